/**
 * Is PlaceGuard keeping up? Detection must tell its own silence from a
 * device's (STYLE.md habit 12): a collector frozen by a GC pause, a VM
 * freeze or a blocked log pipe, or one replaying the broker's backlog
 * after a restart, hears nothing and then everything at once.
 *
 * Two signals, both general (they need nothing from the broker, which
 * speaks MQTT 3.1.1 and so has no user property to stamp a receive time):
 *
 * - a heartbeat timer: a beat that comes far later than scheduled means
 *   the process itself did not run (its own event loop stalled);
 * - the lag of what arrives: each message's receive time minus its
 *   device's `ts`, beyond that device's learned lag (the engine's
 *   `backlogMs`, which absorbs each device's clock offset). A backlog of
 *   the collector's delays every device, so lateness is counted by device,
 *   not by message: when most of the devices heard in a second are late
 *   (two at least), the collector is working through a backlog. One
 *   device never decides it, however many messages it sends: a device
 *   the broker throttles, one flushing its own store-and-forward buffer,
 *   or one with a bad clock is late on its own account, and a flooding
 *   device must not hold the whole fleet's silence detection off.
 *
 * Behind = stalled, disconnected from the broker, or most devices late;
 * caught up = connected and a second in which nearly every device heard
 * was on time, or only one was late (or nothing arrived: there is no
 * backlog to read).
 */
import { LATE_MS } from '../policies/index.ts'
import type { Clock } from '../shared/clock.ts'
import { formatDuration } from '../shared/duration.ts'

export interface PipelineHealthOptions {
  clock: Clock
  /** A heartbeat this much later than due is a stall of the process. */
  stallThresholdMs?: number
  /** A message this much later than its device's usual lag was held up on the way: backlog. */
  lateMs?: number
  /** Behind for this long raises the pipeline alert… */
  alertAfterMs?: number
  /** …and so does one stall of the process this long. */
  stallAlertMs?: number
  /**
   * Behind or caught up again: the engine's catching-up switch. Caught up
   * after the broker was lost, with the time devices may still need to
   * find it again (reconnectAllowanceMs, see #caughtUp).
   */
  onBehind: (behind: boolean, reconnectAllowanceMs: number) => void
  /** A session resumed or a stall ended: a stored backlog may arrive until then (ms), mixed with live messages. */
  onReplayWindow?: (untilMs: number) => void
  /** The pipeline alert: raised once per episode, cleared on recovery. */
  onAlert: (summary: string, evidence: Record<string, string | number | boolean | null>) => void
  onRecovered: (reason: string) => void
}

export const HEARTBEAT_MS = 250
const WINDOW_MS = 1_000
/** Share of a window's devices late that means "behind", and the share below which it is "caught up". */
const BEHIND_SHARE = 0.5
const CAUGHT_UP_SHARE = 0.1
/** Fewer messages than this in a window say nothing about a backlog. */
const MIN_SAMPLE = 20
/** A backlog is the collector's, so it shows on more than one device: this many late devices at least. */
const MIN_LATE_DEVICES = 2
const LATE_CAUSE = 'most devices\' messages arrive late: the collector is working through a backlog'
/**
 * Nothing at all for this long while connected also means caught up (an
 * idle fleet has no backlog); shorter, and a silent second may only be the
 * broker getting round to resending what it holds for a resumed session.
 */
const IDLE_CAUGHT_UP_MS = 10_000
/**
 * After a (re)connect, behind for at least this long: aedes restores the
 * session's subscriptions, so live messages flow at once, while what it
 * stored for the collector follows from its persistence a moment later.
 */
const SESSION_SETTLE_MS = 5_000
/** How long after a resume or a stall the broker's stored backlog may still be trickling in among live messages. */
export const REPLAY_WINDOW_MS = 120_000
/** The most time devices are given to find the broker again after it was lost (see #caughtUp): their clients' back-off ceilings are a few minutes. */
const MAX_RECONNECT_ALLOWANCE_MS = 5 * 60_000

/** The time devices are given to find a broker lost for `lostMs` before their silence counts (see #caughtUp). */
export function reconnectAllowanceFor (lostMs: number): number {
  return Math.min(4 * lostMs, MAX_RECONNECT_ALLOWANCE_MS)
}

export class PipelineHealth {
  readonly #options: Required<PipelineHealthOptions>
  #lastBeatMs: number
  #windowStartMs: number
  /** This window's messages by device: how many arrived late, and how many on time. */
  #window = new Map<string, { late: number, onTime: number }>()
  #lastMessageMs: number | undefined
  /** An input is taken to be up until the collector says otherwise (a Detection fed directly has no session). */
  #connected = true
  #connectedAtMs = 0
  /** The broker answers the collector's probe; when it stopped, if it has. */
  #answering = true
  #unansweredSinceMs = 0
  /** Since when the broker is lost (the session down, or no answer), and how long it was lost in this episode so far. */
  #lostSinceMs: number | undefined
  #lostMs = 0
  #behindSinceMs: number | undefined
  #cause = ''
  #alerted = false
  #longestStallMs = 0
  #timer: NodeJS.Timeout | undefined
  /** Stalls of the process seen, and episodes of being behind: for the pipeline metrics. */
  readonly counters = { stalls: 0, episodes: 0 }

  constructor (options: PipelineHealthOptions) {
    this.#options = { stallThresholdMs: 2_000, lateMs: LATE_MS, alertAfterMs: 30_000, stallAlertMs: 5_000, onReplayWindow: () => {}, ...options }
    this.#lastBeatMs = options.clock.now()
    this.#windowStartMs = this.#lastBeatMs
  }

  get behind (): boolean {
    return this.#behindSinceMs !== undefined
  }

  start (): void {
    this.#lastBeatMs = this.#options.clock.now()
    this.#timer = setInterval(() => this.beat(), HEARTBEAT_MS)
    this.#timer.unref()
  }

  stop (): void {
    clearInterval(this.#timer)
  }

  /** Called on every beat, and by the detection tick before it judges: a late beat is a stall. */
  beat (): void {
    const now = this.#options.clock.now()
    const gapMs = now - this.#lastBeatMs
    this.#lastBeatMs = now
    if (gapMs > HEARTBEAT_MS + this.#options.stallThresholdMs) {
      this.counters.stalls++
      this.#longestStallMs = Math.max(this.#longestStallMs, gapMs)
      this.#enterBehind(`the collector did not run for ${formatDuration(gapMs)} (its event loop stalled: a pause, a freeze or a blocked write)`)
      this.#options.onReplayWindow(now + REPLAY_WINDOW_MS)
      this.#resetWindow(now)
      if (gapMs >= this.#options.stallAlertMs) this.#alert(now)
      return
    }
    // A broker that does not answer is a stall of the pipeline as surely as one of the collector.
    if (!this.#answering && now - this.#unansweredSinceMs >= this.#options.stallAlertMs) this.#alert(now)
    if (now - this.#windowStartMs < WINDOW_MS) return
    const devices = this.#window.size
    let lateDevices = 0
    let messages = 0
    for (const counts of this.#window.values()) {
      messages += counts.late + counts.onTime
      if (counts.late > counts.onTime) lateDevices++
    }
    const lateShare = devices === 0 ? 0 : lateDevices / devices
    if (this.behind) {
      const idleMs = now - Math.max(this.#lastMessageMs ?? 0, this.#connectedAtMs, this.#behindSinceMs!)
      const settled = now - this.#connectedAtMs >= SESSION_SETTLE_MS
      const onTime = devices > 0 ? lateDevices < MIN_LATE_DEVICES || lateShare <= CAUGHT_UP_SHARE : idleMs >= IDLE_CAUGHT_UP_MS
      const hearing = this.#connected && this.#answering
      if (hearing && settled && onTime) this.#caughtUp(now)
      else {
        // Connected, and held back by late messages: say so, not the cause it entered with.
        if (hearing && settled && devices > 0) this.#cause = LATE_CAUSE
        if (now - this.#behindSinceMs! >= this.#options.alertAfterMs) this.#alert(now)
      }
    } else if (messages >= MIN_SAMPLE && lateDevices >= MIN_LATE_DEVICES && lateShare >= BEHIND_SHARE) {
      this.#enterBehind(LATE_CAUSE)
    }
    this.#resetWindow(now)
  }

  /** One telemetry message of `deviceId`, `backlogMs` later than that device's usual lag. */
  onMessage (deviceId: string, backlogMs: number): void {
    this.#lastMessageMs = this.#options.clock.now()
    let counts = this.#window.get(deviceId)
    if (counts === undefined) {
      counts = { late: 0, onTime: 0 }
      this.#window.set(deviceId, counts)
    }
    if (backlogMs > this.#options.lateMs) counts.late++
    else counts.onTime++
  }

  /** The collector's MQTT session: down, nothing is heard; up, the broker's backlog follows. */
  setConnected (connected: boolean): void {
    if (connected === this.#connected) return
    this.#connected = connected
    // Starting, no device lost anything: only a session that was up and went down is a lost broker.
    if (this.#connectedAtMs !== 0) this.#trackLost()
    if (!connected) this.#enterBehind(this.#connectedAtMs === 0 ? 'starting: no broker session yet' : 'the collector lost its broker connection')
    else this.#resumed()
  }

  /**
   * The broker stopped answering the collector's probe, or answers again
   * (collector/broker-probe.ts). Not answering, nothing comes through, as
   * when the session is down, though the session looks up; past
   * stallAlertMs that is the pipeline alert. Answering again is a resume:
   * what the broker held back follows, mixed with live messages.
   */
  setAnswering (answering: boolean, waitedMs: number): void {
    if (answering === this.#answering) return
    this.#answering = answering
    // It stopped answering when the probe that went unanswered was sent.
    this.#trackLost(answering ? 0 : waitedMs)
    if (answering) return this.#resumed()
    this.#unansweredSinceMs = this.#options.clock.now() - waitedMs
    this.#enterBehind(`the broker stopped answering the collector (a stalled broker, or the network to it) at ${new Date(this.#unansweredSinceMs).toISOString()}`)
  }

  /** The broker is heard again (a session up, or an answer): it settles from now, and what it held back follows, mixed with live messages. */
  #resumed (): void {
    this.#connectedAtMs = this.#options.clock.now()
    this.#resetWindow(this.#connectedAtMs)
    this.#options.onReplayWindow(this.#connectedAtMs + REPLAY_WINDOW_MS)
  }

  #enterBehind (cause: string): void {
    this.#cause = cause
    if (this.behind) return
    this.#behindSinceMs = this.#options.clock.now()
    this.counters.episodes++
    this.#options.onBehind(true, 0)
  }

  /** Keeps #lostSinceMs and #lostMs in step with the session and the probe. */
  #trackLost (sinceMsAgo = 0): void {
    const now = this.#options.clock.now()
    const lost = !this.#connected || !this.#answering
    if (lost && this.#lostSinceMs === undefined) this.#lostSinceMs = now - sinceMsAgo
    else if (!lost && this.#lostSinceMs !== undefined) {
      this.#lostMs += now - this.#lostSinceMs
      this.#lostSinceMs = undefined
    }
  }

  /**
   * Caught up. If the broker was lost for a while in this episode, the
   * devices may have lost it too (a broker restarted, or frozen past their
   * keep-alive), and their clients retry with a back-off that doubles after
   * each failed attempt, up to a ceiling. With jitter the waits average half
   * their bound, so a client doubles about twice as often as the time alone
   * suggests, and its next wait may reach four times the time it has spent
   * retrying. So devices are given four times the time the broker was lost
   * (at most MAX_RECONNECT_ALLOWANCE_MS) before their silence counts. After
   * a broker killed for 10 s, the simulator's fleet (full jitter, 1 s
   * doubling to 60 s) took 17 s from the loss to reconnect at the median,
   * 38 s at p99: 28 s after the broker was back.
   */
  #caughtUp (now: number): void {
    const behindMs = now - this.#behindSinceMs!
    this.#behindSinceMs = undefined
    this.#longestStallMs = 0
    const allowanceMs = reconnectAllowanceFor(this.#lostMs)
    this.#lostMs = 0
    this.#options.onBehind(false, allowanceMs)
    if (this.#alerted) {
      this.#alerted = false
      this.#options.onRecovered(`caught up after ${formatDuration(behindMs)} behind`)
    }
  }

  #alert (now: number): void {
    if (this.#alerted) return
    this.#alerted = true
    const since = this.#behindSinceMs ?? now
    this.#options.onAlert(`PlaceGuard's collector is behind its fleet: ${this.#cause}; no device is judged silent until it has caught up`, {
      cause: this.#cause, behindSince: new Date(since).toISOString(), longestStallMs: this.#longestStallMs || null, connected: this.#connected, brokerAnswering: this.#answering,
    })
  }

  #resetWindow (now: number): void {
    this.#windowStartMs = now
    this.#window.clear()
  }
}
