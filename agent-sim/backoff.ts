/**
 * How long a device waits before its next connection attempt: exponential
 * back-off with full jitter (Marc Brooker, "Exponential Backoff And
 * Jitter", AWS Architecture Blog, 2015). The ceiling doubles with each
 * failed attempt up to a cap, and the wait is drawn uniformly below it, so
 * a fleet dropped at once comes back spread over the window instead of in
 * step (mqtt.js alone retries every second, all together).
 */
export interface Backoff {
  /** The ceiling of the first retry after a drop, ms. */
  baseMs: number
  /** The largest ceiling, ms, however many attempts failed. */
  maxMs: number
}

/**
 * The wait before the next attempt, ms, in [0, min(maxMs, baseMs · 2^failures)):
 * `failures` counts the attempts that failed since the last connection (0
 * right after a drop); `random` is a draw in [0, 1).
 */
export function reconnectDelayMs (failures: number, backoff: Backoff, random: number): number {
  const ceiling = Math.min(backoff.maxMs, backoff.baseMs * 2 ** Math.max(0, failures))
  return ceiling * Math.min(Math.max(random, 0), 1)
}
