/**
 * A failure that can repeat many times a second (a full disk fails every
 * write) is reported once per period, with how many times it happened:
 * `count()` counts one occurrence and answers the number to report (it
 * included) when a report is due — the first at once, then at most one per
 * `periodMs` — and undefined otherwise.
 */
export class CountedReport {
  readonly #periodMs: number
  #unreported = 0
  #reportedAtMs = -Infinity

  constructor (periodMs: number) {
    this.#periodMs = periodMs
  }

  count (nowMs = Date.now()): number | undefined {
    this.#unreported++
    if (nowMs - this.#reportedAtMs < this.#periodMs) return undefined
    const count = this.#unreported
    this.#unreported = 0
    this.#reportedAtMs = nowMs
    return count
  }

  /** Occurrences since the last report, which are then forgotten (a recovery's line says how many it never reported). */
  takeUnreported (): number {
    const count = this.#unreported
    this.#unreported = 0
    return count
  }
}
