/**
 * The collector's MQTT side against a real broker: every message it
 * receives is acknowledged once it is durable in the spool, and only then.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import type { MqttClient } from 'mqtt'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { aedesOf } from '../../broker/broker.ts'
import { Collector } from '../../collector/collector.ts'
import { Spool } from '../../collector/spool.ts'
import type { StoredPoint } from '../../collector/stored-point.ts'
import { createLogger } from '../../shared/logger.ts'
import { connectClient, type RunningBroker, startBroker, waitFor } from '../helpers/broker.ts'
import { createTestFleet, type TestFleet } from '../helpers/fleet.ts'

let fleet: TestFleet
let broker: RunningBroker
let workDir: string

beforeAll(async () => {
  fleet = await createTestFleet([{ deviceId: 'flood-burst', kind: 'flood', site: 'riverside' }])
  broker = await startBroker(fleet, { publishRatePerSec: 0 })
  workDir = mkdtempSync(join(tmpdir(), 'pg-collector-'))
})

afterAll(async () => {
  await broker?.close()
  fleet?.cleanup()
  rmSync(workDir, { recursive: true, force: true })
})

const TOPIC = 'places/riverside/flood/flood-burst/telemetry'

function startCollector (spool: Spool, clientId: string, logs: string[] = [], options: { maxPending?: number, maxBatch?: number, flushIntervalMs?: number } = {}): Collector {
  const destination = new Writable({ write (chunk, _encoding, done) { logs.push(String(chunk)); done() } })
  return new Collector({
    brokerUrl: broker.url, clientId, spool, logger: createLogger({ level: 'info', destination }), ...options,
    tls: { caCert: fleet.paths.caCert, cert: fleet.paths.collectorCert, key: fleet.paths.collectorKey },
  })
}

/** QoS 1 messages the broker still holds for a client: sent to it and not acknowledged, or queued. */
async function inFlightAtBroker (clientId: string): Promise<number> {
  // aedes' persistence is public at runtime but missing from its types.
  const { persistence } = aedesOf(broker.broker) as unknown as { persistence: { outgoingStream: (client: { id: string }) => AsyncIterable<unknown> } }
  let count = 0
  for await (const packet of persistence.outgoingStream({ id: clientId })) if (packet) count++
  return count
}

/** Telemetry points in the spool (the broker's security events about the device land there too). */
function spooledTelemetry (spool: Spool): StoredPoint[] {
  return (spool.peek(100_000)?.points ?? []).filter((point) => point.measurement === 'flood')
}

async function publishBurst (device: MqttClient, from: number, count: number): Promise<void> {
  const baseTs = Date.now()
  await Promise.all(Array.from({ length: count }, (_, i) => device.publishAsync(TOPIC,
    JSON.stringify({ ts: baseTs + i, seq: from + i, fw: '1.2.0', level_cm: 40, battery_v: 3.6 }), { qos: 1 })))
}

describe('Collector acknowledgements', () => {
  it('acknowledges every message of a 3,500-message burst, also the one that completes a batch, and stores each once', async () => {
    const spool = new Spool({ path: join(workDir, 'burst.db'), maxBytes: 100_000_000 })
    // Batches fill by count, not by the timer: each ends on a message whose own PUBACK is still inside mqtt.js.
    const collector = startCollector(spool, 'collector-burst', [], { maxBatch: 100, flushIntervalMs: 2_000 })
    await collector.start()
    const device = await connectClient(broker.url, fleet, fleet.device('flood-burst'), 'flood-burst')
    try {
      await publishBurst(device, 0, 3_500)
      await waitFor(() => spooledTelemetry(spool).length >= 3_500, 60_000, 'all 3,500 messages in the spool')
        .catch((error: Error) => { throw new Error(`${error.message}: ${spooledTelemetry(spool).length} there`) })
      let held = -1
      await waitFor(() => {
        void inFlightAtBroker('collector-burst').then((count) => { held = count })
        return held === 0
      }, 30_000, 'the broker to hold nothing unacknowledged for the collector').catch((error: Error) => {
        throw new Error(`${error.message}: ${held} still in flight`)
      })
      // A second session on the same id gets nothing redelivered: nothing is stored twice.
      await collector.stop()
      const again = startCollector(spool, 'collector-burst')
      await again.start()
      await new Promise((resolve) => setTimeout(resolve, 1_000))
      expect(again.metrics.telemetryStored).toBe(0)
      await again.stop()
      const seqs = spooledTelemetry(spool).map((point) => point.fields.seq)
      expect(new Set(seqs).size).toBe(3_500)
      expect(seqs.length).toBe(3_500)
    } finally {
      device.end(true)
      await collector.stop()
      spool.close()
    }
  }, 120_000)

  it('stays paused across a reconnect while the spool is full, then stores every message once', async () => {
    const spool = new Spool({ path: join(workDir, 'full.db'), maxBytes: 40_000 })
    // Filled to the brim with points smaller than any the device sends: the spool refuses every batch.
    const filler = { measurement: 'flood', tags: { site: 'r', device: 'f' }, fields: { seq: 0, fw: '1.0.0', level_cm: 1, battery_v: 3 } }
    for (let i = 0; spool.bytes + 200 < spool.maxBytes; i++) spool.append([{ ...filler, timestampMs: 1_700_000_000_000 + i }])
    const fillerUpto = spool.peek(10_000)!.uptoId
    const collector = startCollector(spool, 'collector-full', [], { maxPending: 20, maxBatch: 5 })
    await collector.start()
    const device = await connectClient(broker.url, fleet, fleet.device('flood-burst'), 'flood-burst')
    try {
      await publishBurst(device, 0, 100)
      await waitFor(() => collector.paused, 20_000, 'the collector to stop reading')
      // The broker drops the collector's connection; mqtt.js reconnects on a new socket.
      const aedesClients = (aedesOf(broker.broker) as unknown as { clients: Record<string, { close: () => void } | undefined> }).clients
      aedesClients['collector-full']!.close()
      await waitFor(() => !collector.connected, 10_000, 'the collector to notice the disconnect')
      await waitFor(() => collector.connected && collector.paused, 20_000, 'the collector to reconnect and stop reading again')
      await new Promise((resolve) => setTimeout(resolve, 1_000)) // time to read on, were it reading
      expect(collector.pendingMessages).toBeLessThanOrEqual(20)
      // The store drains the spool: everything arrives, once.
      spool.remove(fillerUpto)
      await waitFor(() => spooledTelemetry(spool).length >= 100, 30_000, 'all 100 messages in the spool')
        .catch((error: Error) => { throw new Error(`${error.message}: ${spooledTelemetry(spool).length} there`) })
      let held = -1
      await waitFor(() => {
        void inFlightAtBroker('collector-full').then((count) => { held = count })
        return held === 0
      }, 30_000, 'the broker to hold nothing unacknowledged for the collector')
      const seqs = spooledTelemetry(spool).map((point) => point.fields.seq)
      expect(seqs.length).toBe(100)
      expect(new Set(seqs).size).toBe(100)
    } finally {
      device.end(true)
      await collector.stop()
      spool.close()
    }
  }, 120_000)
})
