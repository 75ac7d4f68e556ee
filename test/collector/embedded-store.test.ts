import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { EmbeddedStore } from '../../collector/embedded-store.ts'
import type { StoredPoint } from '../../collector/stored-point.ts'

const DAY_MS = 86_400_000
const NOW = Date.UTC(2026, 10, 23, 12)

function housing (device: string, seq: number, timestampMs: number, fields: StoredPoint['fields'] = {}): StoredPoint {
  return { measurement: 'housing', tags: { site: 'estate-north', device }, fields: { temp_c: 20.5, co2_ppm: 600, seq, fw: '1.4.2', ...fields }, timestampMs }
}

describe('EmbeddedStore', () => {
  let dir: string
  let now: number
  let store: EmbeddedStore
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'pg-embedded-'))
    now = NOW
    store = new EmbeddedStore({ path: join(dir, 'telemetry.db'), clock: { now: () => now } })
  })
  afterEach(async () => {
    await store.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it('stores a rewritten point once, like InfluxDB: same measurement, tags and time is the same point', async () => {
    const point = housing('housing-001', 1, NOW - 1_000)
    expect(await store.write([point])).toEqual({ outcome: 'success' })
    // A retried batch, or the broker redelivering an unacknowledged message.
    expect(await store.write([point, { ...point, fields: { temp_c: 21, alarm: true } }])).toEqual({ outcome: 'success' })
    expect(store.count()).toBe(1)
    expect(store.recent({ deviceId: 'housing-001' })).toEqual([{ ...point, fields: { ...point.fields, temp_c: 21, alarm: true } }])

    // Tag order does not make a different point; another device or another time does.
    await store.write([{ ...point, tags: { device: 'housing-001', site: 'estate-north' } }])
    await store.write([housing('housing-002', 1, NOW - 1_000), housing('housing-001', 2, NOW - 999)])
    expect(store.count()).toBe(3)
  })

  it('answers recent() newest first, per device or per measurement, with a limit', async () => {
    await store.write([
      ...Array.from({ length: 5 }, (_, i) => housing('housing-001', i, NOW - 10_000 + i * 1_000)),
      housing('housing-002', 0, NOW - 500),
      { measurement: 'flood', tags: { site: 'riverside', device: 'flood-001' }, fields: { level_cm: 40, seq: 0, fw: '1.0.0' }, timestampMs: NOW - 100 },
    ])
    expect(store.recent({ deviceId: 'housing-001', limit: 3 }).map((p) => p.fields.seq)).toEqual([4, 3, 2])
    expect(store.recent({ measurement: 'housing', limit: 2 }).map((p) => p.tags.device)).toEqual(['housing-002', 'housing-001'])
    expect(store.recent({ deviceId: 'flood-001' })).toEqual([
      { measurement: 'flood', tags: { device: 'flood-001', site: 'riverside' }, fields: { level_cm: 40, seq: 0, fw: '1.0.0' }, timestampMs: NOW - 100 },
    ])
    expect(store.recent({ deviceId: 'nobody' })).toEqual([])
    expect(store.count('housing')).toBe(6)
    expect(store.count('flood')).toBe(1)
  })

  it('prunes points older than the retention, and only those', async () => {
    await store.write([
      housing('housing-001', 0, NOW - 8 * DAY_MS),
      housing('housing-001', 1, NOW - 7 * DAY_MS + 60_000),
      housing('housing-001', 2, NOW - DAY_MS),
    ])
    expect(await store.prune()).toBe(1)
    expect(store.recent({ deviceId: 'housing-001' }).map((p) => p.fields.seq)).toEqual([2, 1])

    now += 2 * 60_000 // the second point is now just past 7 days old
    expect(await store.prune()).toBe(1)
    expect(store.recent({ deviceId: 'housing-001' }).map((p) => p.fields.seq)).toEqual([2])
  })

  it('prunes a large backlog in chunks without losing recent points', async () => {
    const old = Array.from({ length: 25_000 }, (_, i) => housing(`housing-${i % 100}`, i, NOW - 10 * DAY_MS + i))
    await store.write(old)
    await store.write([housing('housing-001', 99_999, NOW)])
    expect(await store.prune()).toBe(25_000)
    expect(store.count()).toBe(1)
  })

  it('keeps its points across a reopen, and refuses writes once closed', async () => {
    await store.write([housing('housing-001', 1, NOW)])
    await store.close()
    expect(await store.write([housing('housing-001', 2, NOW + 1)])).toMatchObject({ outcome: 'failure' })
    store = new EmbeddedStore({ path: join(dir, 'telemetry.db'), clock: { now: () => now } })
    expect(store.recent({ deviceId: 'housing-001' }).map((p) => p.fields.seq)).toEqual([1])
  })
})
