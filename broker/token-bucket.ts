/**
 * A token bucket per device: `ratePerSec` tokens refill continuously up to
 * `burst`. `take()` answers how long to wait (0 = go now), so the broker can
 * slow a chatty device down by not reading its socket instead of dropping
 * its messages.
 */
export class TokenBucket {
  readonly #ratePerMs: number
  readonly #burst: number
  #tokens: number
  #updatedAt: number

  constructor (ratePerSec: number, burst: number, now: number) {
    this.#ratePerMs = ratePerSec / 1000
    this.#burst = burst
    this.#tokens = burst
    this.#updatedAt = now
  }

  /** Takes one token; returns 0 if one was available, else the milliseconds until it will be. */
  take (now: number): number {
    this.#tokens = Math.min(this.#burst, this.#tokens + (now - this.#updatedAt) * this.#ratePerMs)
    this.#updatedAt = now
    this.#tokens -= 1
    return this.#tokens >= 0 ? 0 : Math.ceil(-this.#tokens / this.#ratePerMs)
  }
}
