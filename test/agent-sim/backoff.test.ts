import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { reconnectDelayMs } from '../../agent-sim/backoff.ts'

const backoff = { baseMs: 1_000, maxMs: 60_000 }

describe('reconnect back-off (exponential, full jitter)', () => {
  it('waits between 0 and a ceiling that doubles per failed attempt from the base, up to the cap', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 200 }), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), (failures, random) => {
      const delay = reconnectDelayMs(failures, backoff, random)
      expect(delay).toBeGreaterThanOrEqual(0)
      expect(delay).toBeLessThan(Math.min(backoff.maxMs, backoff.baseMs * 2 ** failures))
    }))
  })

  it('spreads the whole window: the lowest draw waits nothing, the highest nearly the ceiling', () => {
    expect(reconnectDelayMs(0, backoff, 0)).toBe(0)
    expect(reconnectDelayMs(0, backoff, 0.999)).toBeCloseTo(999)
    expect(reconnectDelayMs(3, backoff, 0.5)).toBe(4_000)
    expect(reconnectDelayMs(6, backoff, 0.5)).toBe(30_000) // ceiling 60 s: capped from 64 s
    expect(reconnectDelayMs(1_100, backoff, 0.5)).toBe(30_000) // 2^1100 is Infinity: still the cap
  })
})
