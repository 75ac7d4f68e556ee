/**
 * Who owns each persistent MQTT session: per client id, the identity URI
 * (role and SAN URI, e.g. `urn:placeguard:collector:main`) of the
 * certificate that created it. aedes keys a session by client id alone, so
 * without this any certificate able to send the same client id would resume
 * another holder's session with clean=false, receive (and so delete) its
 * queued QoS 1 messages and take over its connection (STRIDE: Spoofing,
 * Information disclosure) — the collector's queued telemetry first of all.
 *
 * Kept beside the quarantine file so that the binding survives a restart as
 * long as the session does. The file is an append-only log of JSON lines
 * (one per change, last line wins), compacted when loaded and when it has
 * grown well past its live entries: an owner changes rarely, and a fleet's
 * first connections must not rewrite a growing file once per device.
 * Entries are bounded by the client ids that certificates from the fleet CA
 * may hold (one per device, plus the collector's).
 */
import { appendFileSync } from 'node:fs'
import { readTextIfExists, writeFileAtomic } from '../shared/files.ts'

/** Where the broker keeps session owners, in the data directory. */
export const SESSION_OWNERS_FILE = 'session-owners.jsonl'

interface Change { id: string, owner: string | null }

/**
 * A write that fails (a full disk) is told to `onSaveError` and changes
 * nothing in force: the binding holds in memory, and the next compaction
 * that can write saves it (a restart before that forgets it, as it forgets
 * the session itself, which broker.db could not save either).
 */
export class SessionOwners {
  readonly #path: string | undefined
  readonly #owners = new Map<string, string>()
  readonly #onSaveError: (error: Error) => void
  #logLines = 0
  /** A write failed since the last compaction: the file is behind the map, so the next change compacts. */
  #behind = false

  constructor (path?: string, onSaveError: (error: Error) => void = () => {}) {
    this.#path = path
    this.#onSaveError = onSaveError
    if (!path) return
    const raw = readTextIfExists(path)
    if (raw === undefined) return
    for (const line of raw.split('\n')) {
      if (line.trim() === '') continue
      let change: Change
      try {
        change = JSON.parse(line) as Change
      } catch {
        // A line cut short by a crash mid-append: the change it carried never
        // took effect for a client that saw its CONNACK after it, so skip it.
        continue
      }
      if (change.owner === null) this.#owners.delete(change.id)
      else this.#owners.set(change.id, change.owner)
    }
    this.#compact()
  }

  /** The identity URI that owns `clientId`'s persistent session, if one is recorded. */
  ownerOf (clientId: string): string | undefined {
    return this.#owners.get(clientId)
  }

  /** Records `owner` as the owner of `clientId`'s session (written before CONNACK). */
  claim (clientId: string, owner: string): void {
    if (this.#owners.get(clientId) === owner) return
    this.#owners.set(clientId, owner)
    this.#append({ id: clientId, owner })
  }

  /** Forgets `clientId`'s owner: its session was discarded (a clean session by another identity). */
  release (clientId: string): void {
    if (!this.#owners.delete(clientId)) return
    this.#append({ id: clientId, owner: null })
  }

  get size (): number {
    return this.#owners.size
  }

  #append (change: Change): void {
    if (!this.#path) return
    if (this.#behind || this.#logLines > 2 * this.#owners.size + 1_000) return this.#compact()
    try {
      appendFileSync(this.#path, `${JSON.stringify(change)}\n`, { mode: 0o600 })
      this.#logLines++
    } catch (error) {
      // A line may be half written: the next write is a whole new file.
      this.#behind = true
      this.#onSaveError(error as Error)
    }
  }

  #compact (): void {
    if (!this.#path) return
    const lines = [...this.#owners].map(([id, owner]) => `${JSON.stringify({ id, owner })}\n`)
    try {
      writeFileAtomic(this.#path, lines.join(''), 0o600)
      this.#logLines = lines.length
      this.#behind = false
    } catch (error) {
      this.#behind = true
      this.#onSaveError(error as Error)
    }
  }
}
