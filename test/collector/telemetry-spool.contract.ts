/**
 * What every TelemetrySpool must do (collector/telemetry-spool.ts): run by
 * spool.test.ts for the SQLite Spool, and by any later spool's test against
 * a place of its own. `open(maxBytes)` opens the spool of this test's place.
 */
import { describe, expect, it } from 'vitest'
import type { StoredPoint } from '../../collector/stored-point.ts'
import { SpoolFullError, type TelemetrySpool } from '../../collector/telemetry-spool.ts'
import { type StorePlace, storesPerTest } from '../helpers/store-place.ts'

function points (from: number, count: number): StoredPoint[] {
  return Array.from({ length: count }, (_, i) => ({
    measurement: 'housing', tags: { site: 'estate-north', device: 'housing-007' },
    fields: { temp_c: 20.5, co2_ppm: 612, seq: from + i, fw: '1.4.2', door_open: false }, timestampMs: 1_700_000_000_000 + from + i,
  }))
}

const seqs = (batch: StoredPoint[] | undefined): unknown[] => (batch ?? []).map((point) => point.fields.seq)

export function telemetrySpoolContract (name: string, newPlace: () => StorePlace<TelemetrySpool, [maxBytes: number]>): void {
  describe(`TelemetrySpool contract: ${name}`, () => {
    const { open } = storesPerTest(newPlace)

    it('hands points back oldest first, unchanged, until they are removed', () => {
      const spool = open(1_000_000)
      spool.append(points(0, 3))
      spool.append(points(3, 4))
      expect(spool.peek(100)?.points).toEqual([...points(0, 3), ...points(3, 4)])
      const first = spool.peek(5)!
      expect(seqs(first.points)).toEqual([0, 1, 2, 3, 4])
      expect(seqs(spool.peek(5)?.points)).toEqual([0, 1, 2, 3, 4]) // peek does not consume
      spool.remove(first.uptoId)
      expect(spool.pendingPoints).toBe(2)
      expect(seqs(spool.peek(5)?.points)).toEqual([5, 6])
      spool.remove(spool.peek(5)!.uptoId)
      expect(spool.peek(5)).toBeUndefined()
      expect(spool.pendingPoints).toBe(0)
      expect(spool.bytes).toBe(0)
      spool.close()
    })

    it('counts the exact JSON bytes it holds, and never reuses an id', () => {
      const spool = open(1_000_000)
      const batch = points(0, 10)
      spool.append(batch)
      const expected = batch.reduce((sum, point) => sum + Buffer.byteLength(JSON.stringify(point)), 0)
      expect(spool.bytes).toBe(expected)
      const { uptoId } = spool.peek(10)!
      spool.remove(uptoId)
      spool.append(points(10, 1))
      expect(spool.peek(1)!.uptoId).toBeGreaterThan(uptoId)
      spool.remove(uptoId) // a stale id from before cannot remove the new point
      expect(spool.pendingPoints).toBe(1)
      spool.close()
    })

    it('refuses a batch that would exceed maxBytes as a whole, and loses nothing it held', () => {
      const onePoint = Buffer.byteLength(JSON.stringify(points(0, 1)[0]))
      const spool = open(onePoint * 10)
      expect(spool.maxBytes).toBe(onePoint * 10)
      spool.append(points(0, 8))
      expect(spool.nearFull).toBe(false)
      spool.append(points(8, 1))
      expect(spool.nearFull).toBe(true)
      expect(() => spool.append(points(9, 2))).toThrow(SpoolFullError)
      expect(spool.pendingPoints).toBe(9)
      expect(seqs(spool.peek(100)?.points)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8])
      spool.remove(spool.peek(5)!.uptoId)
      spool.append(points(9, 2)) // room again once the store drained some
      expect(seqs(spool.peek(100)?.points)).toEqual([5, 6, 7, 8, 9, 10])
      spool.close()
    })

    it('refuses a point the store could never accept, before storing any of its batch', () => {
      const spool = open(1_000_000)
      const bad = { ...points(1, 1)[0]!, fields: { level_cm: Number.NaN } }
      expect(() => spool.append([...points(0, 1), bad])).toThrow(/invalid float value/)
      expect(spool.pendingPoints).toBe(0)
      spool.close()
    })

    it('keeps its points, order and byte count across a reopen', () => {
      const spool = open(1_000_000)
      spool.append(points(0, 50))
      spool.remove(spool.peek(20)!.uptoId)
      const bytes = spool.bytes
      spool.close()
      const reopened = open(1_000_000)
      expect(reopened.pendingPoints).toBe(30)
      expect(reopened.bytes).toBe(bytes)
      expect(seqs(reopened.peek(100)?.points)).toEqual(seqs(points(20, 30)))
      reopened.close()
    })

    it('sets the points the store refused aside at remove, kept across a reopen, out of the FIFO', () => {
      const spool = open(1_000_000)
      spool.append(points(0, 5))
      const batch = spool.peek(5)!
      expect(spool.rejectedPoints).toBe(0)
      spool.remove(batch.uptoId, [{ point: batch.points[1]!, reason: 'field type conflict' }, { point: batch.points[3]!, reason: 'too old' }])
      expect(spool.pendingPoints).toBe(0)
      expect(spool.bytes).toBe(0)
      spool.close()
      const reopened = open(1_000_000)
      expect(reopened.rejectedPoints).toBe(2)
      const rejected = reopened.rejected()
      expect(rejected.map((r) => [r.point, r.reason])).toEqual([[batch.points[1], 'field type conflict'], [batch.points[3], 'too old']])
      expect(rejected.every((r) => !Number.isNaN(Date.parse(r.at)))).toBe(true)
      expect(reopened.rejected(1)).toHaveLength(1)
      expect(reopened.peek(10)).toBeUndefined()
      reopened.close()
    })

    it('gives events of one series in one millisecond their own ordinals, and leaves telemetry alone', () => {
      const spool = open(1_000_000)
      const event = (type: string): StoredPoint => ({ measurement: 'security_event', tags: { type, device: 'flood-1' }, fields: { reason: 'x', count: 1 }, timestampMs: 1_700_000_000_000 })
      spool.append([event('acl-denied'), event('acl-denied'), event('connect'), ...points(0, 2)])
      spool.append([event('acl-denied')])
      expect(spool.peek(10)!.points.map((p) => p.ordinalNs)).toEqual([0, 1, 0, undefined, undefined, 2])
      spool.close()
    })
  })
}
