/**
 * Failed authentications per source address (STRIDE S: bearer-token brute
 * force). After `maxFailures` 401s within `windowMs`, the address gets 429
 * with Retry-After until the window ends — for every request that needs a
 * token, good or bad, so the answer never says whether a guess was right.
 * Other addresses are not affected. At most `maxAddresses` are tracked;
 * past it the least recently failing is forgotten and counted.
 */
import type { Clock } from '../../shared/clock.ts'

export interface AuthFailureOptions { maxFailures: number, windowMs: number, maxAddresses: number, clock: Clock }

export class AuthFailureLimiter {
  readonly #options: AuthFailureOptions
  readonly #windows = new Map<string, { startMs: number, failures: number }>()
  #forgotten = 0

  constructor (options: AuthFailureOptions) {
    this.#options = options
  }

  /** Milliseconds until this address may try again; 0 if it may now. */
  retryAfterMs (address: string): number {
    const window = this.#windows.get(address)
    if (!window) return 0
    const endsMs = window.startMs + this.#options.windowMs
    const now = this.#options.clock.now()
    if (now >= endsMs) {
      this.#windows.delete(address)
      return 0
    }
    return window.failures >= this.#options.maxFailures ? endsMs - now : 0
  }

  recordFailure (address: string): void {
    const now = this.#options.clock.now()
    const current = this.#windows.get(address)
    const window = current && now < current.startMs + this.#options.windowMs ? current : { startMs: now, failures: 0 }
    window.failures++
    this.#windows.delete(address) // re-insert: Map order is recency
    if (this.#windows.size >= this.#options.maxAddresses) {
      this.#windows.delete(this.#windows.keys().next().value!)
      this.#forgotten++
    }
    this.#windows.set(address, window)
  }

  /** Addresses tracked, and how many were forgotten early because the bound was reached. */
  get stats (): { addresses: number, forgotten: number } {
    return { addresses: this.#windows.size, forgotten: this.#forgotten }
  }
}
