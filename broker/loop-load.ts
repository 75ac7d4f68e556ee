/**
 * How busy this process's event loop is: Node's event-loop utilization
 * (the share of wall time spent running callbacks rather than waiting in
 * the poll), over windows the owner closes about once a second.
 *
 * The TLS gate reads it to tell a peer that is slow from a broker that is
 * slow: in a reconnect storm thousands of handshakes wait in the broker's
 * own queue, the loop runs flat out, and a deadline that fires then would
 * throw away handshakes that are late through no fault of their peers.
 */
import { type EventLoopUtilization, performance } from 'node:perf_hooks'

/** A window shorter than this is too short to judge on its own. */
const MIN_WINDOW_MS = 200

export class LoopLoad {
  #mark: EventLoopUtilization = performance.eventLoopUtilization()
  #last = 0

  /** Closes the current window and starts the next; call about once a second. */
  sample (): void {
    const window = performance.eventLoopUtilization(this.#mark)
    this.#mark = performance.eventLoopUtilization()
    this.#last = window.utilization
  }

  /**
   * The busier of the last closed window and the current one (once it is
   * long enough): a loop that has just become saturated shows at once, and
   * one that has just stopped being so still shows for a window.
   */
  get utilization (): number {
    const current = performance.eventLoopUtilization(this.#mark)
    return current.idle + current.active >= MIN_WINDOW_MS ? Math.max(this.#last, current.utilization) : this.#last
  }
}
