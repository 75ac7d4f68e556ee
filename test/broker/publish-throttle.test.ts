import { afterEach, describe, expect, it, vi } from 'vitest'
import { PublishThrottle } from '../../broker/publish-throttle.ts'

afterEach(() => { vi.useRealTimers() })

describe('PublishThrottle', () => {
  it('releases the burst at once and the rest at the rate, in arrival order', () => {
    vi.useFakeTimers({ now: 0 })
    const throttle = new PublishThrottle(10, 3, 30_000, () => Date.now())
    const released: number[] = []
    const verdicts = Array.from({ length: 8 }, (_, i) => throttle.admit(() => released.push(i)))
    expect(verdicts).toEqual(['now', 'now', 'now', 'delayed', 'delayed', 'delayed', 'delayed', 'delayed'])
    expect(released).toEqual([0, 1, 2])
    vi.advanceTimersByTime(100)
    expect(released).toEqual([0, 1, 2, 3])
    vi.advanceTimersByTime(400)
    expect(released).toEqual([0, 1, 2, 3, 4, 5, 6, 7])
  })

  it('keeps order when a new publish arrives while others are held', () => {
    vi.useFakeTimers({ now: 0 })
    const throttle = new PublishThrottle(1, 1, 30_000, () => Date.now())
    const released: string[] = []
    throttle.admit(() => released.push('a'))
    throttle.admit(() => released.push('b'))
    vi.advanceTimersByTime(1500) // a token is free again, but 'b' is still ahead
    throttle.admit(() => released.push('c'))
    vi.advanceTimersByTime(5000)
    expect(released).toEqual(['a', 'b', 'c'])
  })

  it('refuses a publish that would wait longer than the hold limit', () => {
    vi.useFakeTimers({ now: 0 })
    const throttle = new PublishThrottle(1, 1, 2_500, () => Date.now())
    const verdicts = Array.from({ length: 5 }, () => throttle.admit(() => {}))
    expect(verdicts).toEqual(['now', 'delayed', 'delayed', 'overflow', 'overflow'])
  })

  it('releases everything held when flushed', () => {
    vi.useFakeTimers({ now: 0 })
    const throttle = new PublishThrottle(1, 1, 30_000, () => Date.now())
    const released: number[] = []
    for (let i = 0; i < 4; i++) throttle.admit(() => released.push(i))
    throttle.flush()
    expect(released).toEqual([0, 1, 2, 3])
  })
})
