/**
 * Changes to aedes' own source, made as its files load, for work aedes does
 * on every connection that PlaceGuard's broker does not need. Each is a
 * small, upstreamable diff against the pinned aedes (~1.2.0), applied only
 * when the original text is found word for word; otherwise the file loads
 * unchanged and a warning (`PG_AEDES_PATCH`) says which patch was skipped.
 *
 * - `empty-queue-clean`: aedes ends every CONNECT by streaming the session's
 *   queued messages (`emptyQueue` in lib/handlers/connect.js): a
 *   `Readable`, a transform and a `pipeline`, whose end aborts an
 *   AbortController and so builds a DOMException with its stack trace. For a
 *   clean session the queue was just deleted (`cleanSubscriptions`), so the
 *   stream is empty, yet it cost about a tenth of the broker's CPU per
 *   reconnect in a reconnect storm (docs/perf/broker-reconnect.md). Patched,
 *   a clean session whose persistence reports its queue empty
 *   (`outgoingEmpty(client)`, which PlaceGuard's SQLite store answers from
 *   the per-client counts it keeps for the queue caps) resumes the client and
 *   goes on at once. Anything else, a persistent session or a persistence
 *   without the method, takes aedes' stream as before (a clean session's
 *   stale rows, if a message raced the clean, are cleared there).
 *
 * - `unused-packet-id`: [MQTT-2.3.1-2] a new PUBLISH takes a packet id that
 *   no other unacknowledged message of the session holds. aedes numbers a
 *   connection's messages from a random start (lib/qos-packet.js) while the
 *   messages a persistent session left unacknowledged are resent under
 *   their original ids [MQTT-4.4.0-1]; a live message could take the id of
 *   a queued one not yet resent, and its PUBACK then cleared that one, never
 *   delivered. Seen as a collector that reconnected with a backlog and lost
 *   a few acknowledged messages (test/broker/packet-ids.test.ts). Patched,
 *   the numbering skips every id the persistence says is held
 *   (`outgoingIdHeld(client, id)`, answered by PlaceGuard's SQLite store
 *   from the maps it keeps of each queue). A persistence without the method
 *   numbers as aedes does.
 *
 * Node's synchronous module hooks (`module.registerHooks`) rewrite the file
 * as it is loaded, so nothing in node_modules is edited. The hooks must be
 * registered before aedes is first imported: `bin/placeguard.js` does it for
 * every command, the test setup for the tests. `aedesPatchesApplied()` says
 * which patches took.
 */
import module from 'node:module'

interface Patch {
  name: string
  /** The file, as the end of its URL. */
  file: string
  original: string
  replacement: string
}

const PATCHES: readonly Patch[] = [{
  name: 'empty-queue-clean',
  file: '/aedes/lib/handlers/connect.js',
  original: `function emptyQueue (arg, done) {
  const client = this.client
  const persistence = client.broker.persistence
  const outgoing = persistence.outgoingStream(client)
`,
  replacement: `function emptyQueue (arg, done) {
  const client = this.client
  const persistence = client.broker.persistence
  // PlaceGuard (broker/aedes-patches.ts): a clean session with nothing queued has nothing to stream.
  if (this.packet.clean && typeof persistence.outgoingEmpty === 'function' && persistence.outgoingEmpty(client) === true) {
    client.resume()
    return done()
  }
  const outgoing = persistence.outgoingStream(client)
`,
}, {
  name: 'unused-packet-id',
  file: '/aedes/lib/qos-packet.js',
  original: `    if (!original.messageId) {
      this.messageId = client._nextId
      if (client._nextId >= 65535) {
        client._nextId = 1
      } else {
        client._nextId++
      }
    } else {`,
  replacement: `    if (!original.messageId) {
      // PlaceGuard (broker/aedes-patches.ts): [MQTT-2.3.1-2] never an id a queued message of the session still holds.
      const persistence = client.broker.persistence
      const held = typeof persistence.outgoingIdHeld === 'function'
      for (let tried = 1; ; tried++) {
        this.messageId = client._nextId
        if (client._nextId >= 65535) {
          client._nextId = 1
        } else {
          client._nextId++
        }
        if (!held || tried >= 65535 || persistence.outgoingIdHeld(client, this.messageId) !== true) break
      }
    } else {`,
}]

const STATE = Symbol.for('placeguard.aedesPatches')
interface PatchState { applied: Set<string> }
type GlobalWithState = typeof globalThis & { [STATE]?: PatchState }

/** Registers the load hook once per process (later calls do nothing). */
export function installAedesPatches (): void {
  const global = globalThis as GlobalWithState
  if (global[STATE]) return
  const state: PatchState = { applied: new Set() }
  global[STATE] = state
  if (typeof module.registerHooks !== 'function') {
    process.emitWarning('this Node has no module.registerHooks: aedes runs unpatched', { code: 'PG_AEDES_PATCH' })
    return
  }
  module.registerHooks({
    load (url, context, nextLoad) {
      const result = nextLoad(url, context)
      if (!PATCHES.some((patch) => url.endsWith(patch.file)) || result.source === undefined || result.source === null) return result
      const text = typeof result.source === 'string' ? result.source : Buffer.from(result.source as Uint8Array).toString('utf8')
      const patched = applyAedesPatches(url, text)
      for (const name of patched.applied) state.applied.add(name)
      for (const { name, file } of patched.skipped) {
        process.emitWarning(`aedes patch ${name} not applied: ${file} is not the text it was written for`, { code: 'PG_AEDES_PATCH' })
      }
      return { ...result, source: patched.source }
    },
  })
}

/** The source of the file at `url` with every patch for it whose original text it holds; the others skipped. */
export function applyAedesPatches (url: string, source: string): { source: string, applied: string[], skipped: Array<{ name: string, file: string }> } {
  const applied: string[] = []
  const skipped: Array<{ name: string, file: string }> = []
  for (const patch of PATCHES.filter((candidate) => url.endsWith(candidate.file))) {
    if (source.includes(patch.original)) {
      source = source.replace(patch.original, patch.replacement)
      applied.push(patch.name)
    } else {
      skipped.push({ name: patch.name, file: patch.file })
    }
  }
  return { source, applied, skipped }
}

/** The patches applied to the aedes loaded in this process (none before aedes is loaded). */
export function aedesPatchesApplied (): string[] {
  return [...(globalThis as GlobalWithState)[STATE]?.applied ?? []]
}
