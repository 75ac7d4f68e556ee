import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createInfluxSink } from '../../collector/influx-sink.ts'
import { Spool } from '../../collector/spool.ts'
import type { StoredPoint } from '../../collector/stored-point.ts'
import { StoreWriter, type FailedOutcome } from '../../collector/store-writer.ts'
import { startVictoriaMetrics, type RunningVictoriaMetrics } from '../helpers/victoria-metrics.ts'

const DEVICES = 10
const BASE_MS = Date.now() - 3_600_000

/** Message `seq` of the fleet: device seq % DEVICES, a unique timestamp per point. */
function energyPoint (seq: number): StoredPoint {
  return {
    measurement: 'energy', tags: { site: 'harbour', device: `meter-${seq % DEVICES}` },
    fields: { power_kw: 1.5, voltage_v: 230.1, energy_kwh: seq / 10, seq, fw: '2.0.1' }, timestampMs: BASE_MS + seq,
  }
}

async function waitFor (condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(20)
  }
}

describe('StoreWriter', () => {
  let dir: string
  let store: RunningVictoriaMetrics
  let spool: Spool
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pg-writer-'))
    store = await startVictoriaMetrics({ dataDir: join(dir, 'vm') })
    spool = new Spool({ path: join(dir, 'spool.db'), maxBytes: 256 * 1024 * 1024 })
  })
  afterEach(async () => {
    spool.close()
    await store.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  it('sets aside the points a store refuses for good, writes the rest, and keeps the FIFO moving', async () => {
    // victoria-metrics accepts any line, so the refusal InfluxDB gives a field
    // type conflict (422, the rest of the batch written) is added at the sink's
    // boundary; the accepted points go to the real store.
    const real = createInfluxSink({ url: store.url, token: 'unused-by-vm', org: 'placeguard', bucket: 'telemetry', timeoutMs: 2_000 })
    const refused = (point: StoredPoint) => point.fields.fw === '9.9.9'
    const sink = {
      write: async (points: StoredPoint[]) => {
        const accepted = points.filter((point) => !refused(point))
        const result = await real.write(accepted)
        if (result.outcome !== 'success' || accepted.length === points.length) return result
        return { outcome: 'failure' as const, status: 422, error: 'partial write: field type conflict: input field "fw" on measurement "energy" is type string, already exists as type float' }
      },
      close: () => real.close(),
    }
    const errors: string[] = []
    const writer = new StoreWriter({ spool, sink, batchSize: 1_000, onError: (message) => errors.push(message), onRejected: (count, total, reason) => errors.push(`${count} of ${total}: ${reason}`) })
    const points = Array.from({ length: 1_000 }, (_, i) => energyPoint(i))
    for (const i of [7, 500, 501, 999]) points[i] = { ...points[i]!, fields: { ...points[i]!.fields, fw: '9.9.9' } }
    spool.append(points)
    spool.append([energyPoint(5_000)]) // queued behind the refused batch
    writer.start()
    await waitFor(() => spool.pendingPoints === 0, 10_000, 'the spool to drain past the refused points')
    await writer.stop()
    await sink.close()
    expect(writer.counters.rejected).toBe(4)
    expect(spool.rejectedPoints).toBe(4)
    expect(spool.rejected().map((r) => r.point.fields.seq)).toEqual([7, 500, 501, 999])
    expect(spool.rejected()[0]!.reason).toMatch(/field type conflict/)
    expect(errors).toEqual([expect.stringMatching(/^4 of 1000: partial write: field type conflict/)])
    // Bisecting rewrites accepted points; InfluxDB overwrites (series, time), victoria-metrics keeps both: count distinct seqs.
    const stored = new Set((await store.exportSeries('{__name__="energy_seq"}')).flatMap((series) => series.values))
    expect(stored.size).toBe(997)
    expect(stored.has(5_000)).toBe(true)
    expect(stored.has(500)).toBe(false)
  })

  it('delivers every point appended before, during and after a store outage', async () => {
    const errors: Array<[string, FailedOutcome]> = []
    const sink = createInfluxSink({ url: store.url, token: 'unused-by-vm', org: 'placeguard', bucket: 'telemetry', timeoutMs: 2_000 })
    const writer = new StoreWriter({ spool, sink, batchSize: 1_000, maxDelayMs: 1_000, onError: (message, outcome) => errors.push([message, outcome]) })
    writer.start()

    // A live collector: 250 points every 20 ms, with a kick after each commit.
    let appended = 0
    let producing = true
    const producer = (async () => {
      while (producing) {
        spool.append(Array.from({ length: 250 }, (_, i) => energyPoint(appended + i)))
        appended += 250
        writer.kick()
        await sleep(20)
      }
    })()

    await waitFor(() => writer.counters.written >= 2_000, 10_000, 'the first writes')
    await store.halt() // SIGTERM mid-drain; the data stays
    const writtenBeforeOutage = writer.counters.written
    await sleep(3_000)
    expect(writer.counters.writeErrors).toBeGreaterThan(0)
    expect(spool.pendingPoints).toBeGreaterThan(0) // the outage's points wait in the spool
    await store.restart()
    await sleep(500)
    producing = false
    await producer
    await waitFor(() => spool.pendingPoints === 0, 15_000, 'the spool to drain')
    await writer.stop()
    await sink.close()

    expect(writer.counters.written).toBeGreaterThanOrEqual(appended)
    expect(writer.counters.written).toBeGreaterThan(writtenBeforeOutage)
    expect(errors.length).toBe(writer.counters.writeErrors)
    // ECONNRESET for the write that SIGTERM cut, ECONNREFUSED while the store was down.
    for (const [message, outcome] of errors) {
      expect(outcome).toBe('retryable')
      expect(message).toMatch(/cannot reach InfluxDB at http:\/\/127\.0\.0\.1:\d+: (ECONNRESET|ECONNREFUSED)/)
    }

    // victoria-metrics makes acknowledged samples searchable within a second or two (longer on a busy machine).
    let series = await store.exportSeries('{__name__="energy_seq"}')
    const deadline = Date.now() + 15_000
    while (new Set(series.flatMap((s) => s.values)).size < appended && Date.now() < deadline) {
      await sleep(250)
      series = await store.exportSeries('{__name__="energy_seq"}')
    }
    expect(series).toHaveLength(DEVICES)
    const stored = new Set(series.flatMap((s) => s.values))
    expect(stored.size).toBe(appended)
    for (let seq = 0; seq < appended; seq++) if (!stored.has(seq)) throw new Error(`seq ${seq} of ${appended} is missing from the store`)
  })

  it('finishes the write in flight on stop, leaving nothing half-done', async () => {
    spool.append(Array.from({ length: 3_000 }, (_, i) => energyPoint(i)))
    const sink = createInfluxSink({ url: store.url, token: 't', org: 'o', bucket: 'b' })
    const writer = new StoreWriter({ spool, sink, batchSize: 1_000 })
    writer.start()
    await writer.stop()
    await sink.close()
    // Whatever was written left the spool; whatever did not is still there.
    expect(writer.counters.written + spool.pendingPoints).toBe(3_000)
    expect(writer.counters.written).toBeGreaterThanOrEqual(1_000)
  })
})
