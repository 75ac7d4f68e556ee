/**
 * Is the broker answering the collector? A collector in its own process
 * that hears nothing cannot tell a fleet gone silent from a broker that
 * has stopped (SIGSTOP, a VM paused, a network path that drops packets
 * while the TCP session stays up): its own heartbeat is on time and its
 * session looks connected, so every device would be judged silent at once.
 *
 * So once a second it publishes an empty QoS 1 message to the broker's
 * probe topic (shared/topics.ts PROBE_CONTROL_TOPIC), which the broker
 * acknowledges and delivers to no one. A probe unanswered for `timeoutMs`
 * means nothing is coming through: detection holds its judgement of
 * silence, as it does while the session is down, until the broker answers
 * again and what it held back has been read (detection/pipeline-health.ts).
 *
 * One probe at a time, so a stalled broker is not sent a queue of them. If
 * the collector itself did not run for longer than `timeoutMs`, its
 * heartbeat says so; an unanswered probe then says nothing of the broker
 * and is given a fresh start.
 */
import type { Clock } from '../shared/clock.ts'

export interface BrokerProbeOptions {
  /** Sends one probe; `answered` is called at its acknowledgement. */
  send: (answered: () => void) => void
  /** Whether the session is up: no probe is sent, nor judged, while it is down. */
  connected: () => boolean
  clock: Clock
  onChange: (answering: boolean, waitedMs: number) => void
  intervalMs?: number
  timeoutMs?: number
}

const CHECK_MS = 250

export class BrokerProbe {
  readonly #options: Required<BrokerProbeOptions>
  #timer: NodeJS.Timeout | undefined
  #outstanding: { id: number, sentAtMs: number } | undefined
  #nextId = 0
  #lastSentAtMs = -Infinity
  #lastCheckAtMs: number | undefined
  #answering = true

  constructor (options: BrokerProbeOptions) {
    this.#options = { intervalMs: 1_000, timeoutMs: 2_000, ...options }
  }

  /** False from a probe unanswered for timeoutMs until the broker answers one. */
  get answering (): boolean {
    return this.#answering
  }

  start (): void {
    this.#timer ??= setInterval(() => this.check(), CHECK_MS)
    this.#timer.unref()
  }

  stop (): void {
    clearInterval(this.#timer)
    this.#timer = undefined
  }

  /**
   * The session went down: a probe sent on it is not waited for (the
   * session's own state says nothing is heard). Whether the broker answers
   * is known again at the next probe's acknowledgement.
   */
  reset (): void {
    this.#outstanding = undefined
    this.#lastSentAtMs = -Infinity
  }

  /** Runs every 250 ms once started; exposed for tests on an injected clock. */
  check (): void {
    const { clock, timeoutMs, intervalMs } = this.#options
    const now = clock.now()
    const last = this.#lastCheckAtMs
    this.#lastCheckAtMs = now
    if (last !== undefined && now - last > timeoutMs) {
      if (this.#outstanding) this.#outstanding.sentAtMs = now
      return
    }
    if (!this.#options.connected()) return
    const outstanding = this.#outstanding
    if (outstanding) {
      const waitedMs = now - outstanding.sentAtMs
      if (this.#answering && waitedMs > timeoutMs) {
        this.#answering = false
        this.#options.onChange(false, waitedMs)
      }
      return
    }
    if (now - this.#lastSentAtMs < intervalMs) return
    const probe = { id: ++this.#nextId, sentAtMs: now }
    this.#outstanding = probe
    this.#lastSentAtMs = now
    this.#options.send(() => {
      // An acknowledgement of a probe from before a reset (resent on the new session) answers nothing now.
      if (this.#outstanding?.id !== probe.id) return
      this.#outstanding = undefined
      if (!this.#answering) {
        this.#answering = true
        this.#options.onChange(true, clock.now() - probe.sentAtMs)
      }
    })
  }
}
