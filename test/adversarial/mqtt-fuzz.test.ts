/**
 * Fuzzing the broker over mutual TLS with valid device certificates
 * (issue 11). Generated and mutated MQTT packets (test/helpers/mqtt-fuzz.ts)
 * go to a broker running as a child process, many connections at once,
 * while a well-behaved device publishes QoS 1 to a collector throughout.
 *
 * Properties: the broker never exits; its heap after GC stays within a
 * bound; every connection ends with the broker answering or closing within
 * the connect/keep-alive timeout (never hangs); every connection carrying a
 * packet the spec says to close on is closed (STRIDE D and T); the good
 * device loses nothing.
 *
 * PLACEGUARD_FUZZ_PACKETS scales the run (default 100,000);
 * PLACEGUARD_FUZZ_SEED and PLACEGUARD_FUZZ_ONLY=<connection>:<lane> replay a failure.
 */
import type { MqttClient } from 'mqtt'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { collectorFiles, connectClient, waitFor } from '../helpers/broker.ts'
import { startBrokerProcess, type BrokerProcess, type MemorySample } from '../helpers/broker-process.ts'
import { createTestFleet, type TestFleet } from '../helpers/fleet.ts'
import { withTimeout } from '../helpers/floods.ts'
import { scriptFor, type FuzzScript, type FuzzTarget } from '../helpers/mqtt-fuzz.ts'
import { deviceContext, pool, sendRaw, type RawOutcome } from '../helpers/raw-mqtt.ts'

const TOTAL_PACKETS = Number(process.env.PLACEGUARD_FUZZ_PACKETS ?? 100_000)
const SEED = Number(process.env.PLACEGUARD_FUZZ_SEED ?? 20_261_130)
/** `<connection>:<lane>` as printed on a failure: that one connection alone. */
const ONLY = process.env.PLACEGUARD_FUZZ_ONLY?.split(':').map(Number) as [number, number] | undefined
const PACKETS_PER_CONNECTION = 120
const IN_FLIGHT = 48
const CONNECT_TIMEOUT_MS = 3_000
/** The longest the broker may take to act, plus room for a loaded 2-core machine. */
const BOUND_MS = Math.max(CONNECT_TIMEOUT_MS, 1_500 * 2) + 15_000
/** Heap growth (after GC) allowed over the run: generous, but far below what a leak per connection or packet would add. */
const HEAP_GROWTH_BYTES = 64 * 1024 * 1024
/** RSS growth allowed: the allocator keeps freed pages, so far more room than the heap (about 100 MB seen at 100k packets). */
const RSS_GROWTH_BYTES = 384 * 1024 * 1024

/**
 * One identity per lane: connections sharing a client id would take each
 * other over [MQTT-3.1.4-2]. Ids of one length, so that a connection's bytes
 * differ between lanes only in the id's digits and a failure replays the same.
 */
const FUZZERS = Array.from({ length: IN_FLIGHT }, (_, i) => `fuzz-${String(i + 1).padStart(2, '0')}`)
const topic = (id: string): string => `places/block-a/housing/${id}/telemetry`

let fleet: TestFleet
let broker: BrokerProcess

beforeAll(async () => {
  fleet = await createTestFleet([...FUZZERS, 'good-1'].map((deviceId) => ({ deviceId, kind: 'housing', site: 'block-a' })))
  // No publish throttle: the fuzzer aims at the parser and the session state
  // machine, and the throttle would only slow it (it has tests of its own).
  // The fuzzer's lanes all connect from 127.0.0.1 at once: the per-address handshake cap (a TLS-gate
  // defence with tests of its own) is raised above the lane count so it tests packets, not the gate.
  broker = await startBrokerProcess(fleet, { publishRatePerSec: 0, connectTimeoutMs: CONNECT_TIMEOUT_MS, maxHandshakesPerAddress: 1_000 })
})

afterAll(async () => {
  await broker?.stop()
  fleet?.cleanup()
})

interface GoodDevice { sent: number, acked: Set<number>, failures: string[], stop: () => Promise<void> }

/** A device that publishes QoS 1, one message at a time, until stopped. */
function publishThroughout (device: MqttClient): GoodDevice {
  const state: GoodDevice = { sent: 0, acked: new Set(), failures: [], stop: async () => {} }
  let running = true
  const loop = (async () => {
    while (running && state.failures.length === 0) {
      const seq = state.sent++
      try {
        await withTimeout(device.publishAsync(topic('good-1'), JSON.stringify({ seq }), { qos: 1 }), 30_000)
        state.acked.add(seq)
      } catch (error) {
        state.failures.push(`seq ${seq}: ${(error as Error).message}`)
      }
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  })()
  device.on('close', () => { if (running) state.failures.push('good device disconnected') })
  state.stop = async () => { running = false; await loop }
  return state
}

describe('MQTT fuzzing over mutual TLS', () => {
  it(`survives ${TOTAL_PACKETS} generated and mutated packets; closes on every malformed one; a good device loses nothing`, async () => {
    const contexts = FUZZERS.map((id) => deviceContext(fleet, fleet.device(id)))
    const targets: FuzzTarget[] = FUZZERS.map((deviceId) => ({ deviceId, topic: topic(deviceId) }))
    const connections = ONLY !== undefined ? 1 : Math.ceil(TOTAL_PACKETS / (PACKETS_PER_CONNECTION - 1))

    const collector = await connectClient(broker.url, fleet, collectorFiles(fleet), 'collector')
    const received = new Set<number>()
    collector.on('message', (_topic, payload) => received.add((JSON.parse(payload.toString()) as { seq: number }).seq))
    await collector.subscribeAsync(topic('good-1'), { qos: 1 })
    const device = await connectClient(broker.url, fleet, fleet.device('good-1'), 'good-1')
    const good = publishThroughout(device)

    let packetsSent = 0
    const failures: string[] = []
    const run = async (slot: number, lane: number): Promise<RawOutcome> => {
      const [index, who] = ONLY ?? [slot, lane]
      const script: FuzzScript = scriptFor(targets[who]!, PACKETS_PER_CONNECTION, SEED, index)
      packetsSent += script.packets.length
      const pingreqs = script.packets.filter((p) => p.label.startsWith('pingreq')).length
      const [opening, ...rest] = script.packets
      const raw = { opening: opening!.bytes, rest: Buffer.concat(rest.map((p) => p.bytes)), awaitReply: script.keepaliveSec > 0 }
      const outcome = await sendRaw(broker.port, contexts[who]!, raw, pingreqs, BOUND_MS)
      const mustClose = script.packets.find((p) => p.mustClose)
      const replay = `PLACEGUARD_FUZZ_SEED=${SEED} PLACEGUARD_FUZZ_ONLY=${index}:${who}`
      if (outcome.end === 'hung') failures.push(`${replay}: neither answered nor closed within ${BOUND_MS} ms (${labels(script)})`)
      if (outcome.end === 'tls-error') failures.push(`${replay}: TLS failed: ${outcome.error}`)
      if (mustClose && outcome.end === 'answered') failures.push(`${replay}: not closed after "${mustClose.label}" (${mustClose.mustClose}); bytes ${mustClose.bytes.subarray(0, 48).toString('hex')}`)
      return outcome
    }

    // Warm-up first, so the baseline includes the broker's steady-state allocations.
    const warm = Math.min(connections, IN_FLIGHT)
    const warmOutcomes = await pool(warm, IN_FLIGHT, run)
    const before = await settledMemory(broker)
    const outcomes = [...warmOutcomes, ...await pool(connections - warm, IN_FLIGHT, (i, lane) => run(i + warm, lane))]
    const after = await settledMemory(broker)

    await good.stop()
    await waitFor(() => [...good.acked].every((seq) => received.has(seq)), 20_000, 'the collector to receive every acknowledged message').catch(() => {})
    device.end(true)
    collector.end(true)

    const ends = countBy(outcomes.map((o) => o.end))
    const summary = `seed ${SEED}: ${connections} connections, ${packetsSent} packets; ends ${JSON.stringify(ends)}; ` +
      `heap ${mb(before.heapUsed)} → ${mb(after.heapUsed)} MB, rss ${mb(before.rss)} → ${mb(after.rss)} MB; good device ${good.acked.size}/${good.sent} acked, ${received.size} received`
    console.error(summary)

    expect(broker.exit(), `the broker exited: ${broker.stderrTail()}`).toBeUndefined()
    if (ONLY === undefined) expect(packetsSent).toBeGreaterThanOrEqual(TOTAL_PACKETS)
    expect(failures.slice(0, 20), `${failures.length} failing connections; ${summary}`).toEqual([])
    expect(after.heapUsed - before.heapUsed, summary).toBeLessThan(HEAP_GROWTH_BYTES)
    expect(after.rss - before.rss, summary).toBeLessThan(RSS_GROWTH_BYTES)
    expect(good.failures, summary).toEqual([])
    expect(good.acked.size, summary).toBe(good.sent)
    expect([...good.acked].filter((seq) => !received.has(seq)), summary).toEqual([])
  }, 600_000)
})

/** Memory after the broker has let go of closed connections: GC until the heap stops shrinking. */
async function settledMemory (process: BrokerProcess): Promise<MemorySample> {
  let sample = await process.memory()
  for (let i = 0; i < 5; i++) {
    await new Promise((resolve) => setTimeout(resolve, 300))
    const next = await process.memory()
    if (next.heapUsed >= sample.heapUsed * 0.98) return next
    sample = next
  }
  return sample
}

function labels (script: FuzzScript): string {
  const marked = script.packets.filter((p) => p.label !== 'publish' && !['puback', 'pubrec', 'pubrel', 'pubcomp', 'subscribe', 'unsubscribe', 'pingreq'].includes(p.label))
  return marked.map((p) => p.label).join(', ').slice(0, 300)
}

function countBy (values: string[]): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const value of values) counts[value] = (counts[value] ?? 0) + 1
  return counts
}

const mb = (bytes: number): string => (bytes / 1_048_576).toFixed(1)
