import { TokenBucket } from './token-bucket.ts'

export type ThrottleVerdict = 'now' | 'delayed' | 'overflow'

/**
 * Paces one device's publishes: a token bucket decides when each may go,
 * and held publishes are released by one timer in arrival order (separate
 * timers per message could reorder them). Holding a publish holds aedes'
 * read loop for that client, so the device is slowed by TCP back-pressure
 * and nothing is dropped — up to `maxHoldMs`: a backlog longer than that
 * would outlast MQTT keepalive, so it is refused and the caller disconnects.
 */
export class PublishThrottle {
  readonly #bucket: TokenBucket
  readonly #maxHoldMs: number
  readonly #held: Array<{ releaseAt: number, release: () => void }> = []
  readonly #now: () => number
  #timer: NodeJS.Timeout | undefined

  constructor (ratePerSec: number, burst: number, maxHoldMs: number, now: () => number) {
    this.#now = now
    this.#bucket = new TokenBucket(ratePerSec, burst, now())
    this.#maxHoldMs = maxHoldMs
  }

  /** Calls `release` now or later, in order; answers which, or 'overflow' (release is not called). */
  admit (release: () => void): ThrottleVerdict {
    const now = this.#now()
    const wait = this.#bucket.take(now)
    if (wait === 0 && this.#held.length === 0) {
      release()
      return 'now'
    }
    if (wait > this.#maxHoldMs) return 'overflow'
    // Waits grow with each token taken, so releaseAt never decreases along the queue.
    const releaseAt = Math.max(now + wait, this.#held.at(-1)?.releaseAt ?? 0)
    this.#held.push({ releaseAt, release })
    if (!this.#timer) this.#schedule(now)
    return 'delayed'
  }

  /** Releases everything held at once (the session is closing). */
  flush (): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
    for (const entry of this.#held.splice(0)) entry.release()
  }

  #schedule (now: number): void {
    const head = this.#held[0]
    if (!head) { this.#timer = undefined; return }
    this.#timer = setTimeout(() => {
      const current = this.#now()
      while (this.#held.length > 0 && this.#held[0]!.releaseAt <= current) this.#held.shift()!.release()
      this.#schedule(current)
    }, Math.max(0, head.releaseAt - now))
  }
}
