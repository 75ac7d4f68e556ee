import { describe, expect, it } from 'vitest'
import { TokenBucket } from '../../broker/token-bucket.ts'

describe('TokenBucket', () => {
  it('lets a burst through, then spaces publishes at the rate', () => {
    const bucket = new TokenBucket(2, 3, 0)
    expect([bucket.take(0), bucket.take(0), bucket.take(0)]).toEqual([0, 0, 0])
    expect(bucket.take(0)).toBe(500)
    expect(bucket.take(0)).toBe(1000)
  })

  it('refills over time, never above the burst', () => {
    const bucket = new TokenBucket(10, 2, 0)
    bucket.take(0)
    bucket.take(0)
    expect(bucket.take(50)).toBe(50)
    expect(bucket.take(10_000)).toBe(0)
    expect(bucket.take(10_000)).toBe(0)
    expect(bucket.take(10_000)).toBeGreaterThan(0)
  })
})
