import type { LorawanMessage } from '../../shared/lorawan.ts'
import type { Finding } from '../finding.ts'
import type { PolicyOf } from '../schema.ts'

/** One uplink or join of a device, on the network server's clock. */
export interface FrameEntry { event: 'up' | 'join', atMs: number, fCnt: number | null }

/** What lorawan-fcnt-reset remembers of a device: its last frames in time order, and its last finding's pair. */
export interface FrameCounterState {
  /** The last FRAMES_KEPT uplinks and joins, sorted by atMs. */
  history: FrameEntry[]
  /** The two frames the last finding was about (previous → later), so a join between them delivered late clears it. */
  reset: { atMs: number, previousAtMs: number } | null
}

/** Frames remembered per device: enough to place an event delivered late (a backlog) between its neighbours. */
export const FRAMES_KEPT = 16
/**
 * The most frames a device could have sent per second of elapsed time, for
 * a wrap to be believed: regional duty-cycle and dwell-time limits keep a
 * LoRaWAN device well under one frame a second. A replayed pre-wrap frame
 * minutes after the last one would need thousands.
 */
const MIN_FRAME_SPACING_MS = 1_000

export const emptyFrameCounter = (): FrameCounterState => ({ history: [], reset: null })

type Step = 'forward' | 'wrap' | 'retransmission' | 'repeated' | 'back'

/**
 * How the counter moved from one uplink to the next one in time. A 16-bit
 * counter wraps 0xFFFF → 0 and a 32-bit one 0xFFFFFFFF → 0 (network
 * servers that rebuild the full 32-bit counter never show the first):
 * a wrap is forward by at most `maxFrameGap` frames, and no faster than
 * a device can send. The same counter again soon is a retransmission
 * (LoRaWAN 1.0.x confirmed retries and NbTrans repeats reuse FCnt);
 * later, a replay the network server let through.
 */
export function frameStep (policy: PolicyOf<'lorawan-fcnt-reset'>, previous: number, next: number, elapsedMs: number): Step {
  if (next > previous) return 'forward'
  if (next === previous) return elapsedMs <= policy.params.retransmitWindow ? 'retransmission' : 'repeated'
  const plausible = Math.min(policy.params.maxFrameGap, 1 + Math.max(0, elapsedMs) / MIN_FRAME_SPACING_MS)
  for (const modulus of [0x1_0000, 0x1_0000_0000]) {
    if (previous < modulus && next + modulus - previous <= plausible) return 'wrap'
  }
  return 'back'
}

export interface FrameVerdict {
  state: FrameCounterState
  finding?: Finding
  /** A finding of this policy for the device no longer holds (a join between was delivered late). */
  clear?: string
  /** The very event already seen (the broker's QoS 1 redelivery): no rule should see it again. */
  duplicate: boolean
}

/**
 * lorawan-fcnt-reset (STRIDE S): an uplink's frame counter is not ahead of
 * the uplink before it in time, with no join in between — a replayed
 * frame, or an ABP device that restarted its counter (which makes every
 * counter it used before acceptable again to a network server that relaxes
 * its check). Events are placed by the network server's receive time, so
 * a backlog delivered late is judged against its neighbours in time, not
 * against what happened to arrive before it; a join delivered after the
 * uplink that followed it clears the finding it caused.
 */
export function lorawanFcntResetRule (policy: PolicyOf<'lorawan-fcnt-reset'>, deviceId: string, state: FrameCounterState, message: LorawanMessage): FrameVerdict {
  const atMs = message.receivedAtMs
  if (message.event !== 'up' && message.event !== 'join') return { state, duplicate: false }
  const fCnt = message.event === 'up' ? (message.fCnt ?? 0) : null
  const entry: FrameEntry = { event: message.event, atMs, fCnt }
  if (state.history.some((e) => e.event === entry.event && e.atMs === atMs && e.fCnt === fCnt)) return { state, duplicate: true }
  const at = state.history.findIndex((e) => e.atMs > atMs)
  const index = at === -1 ? state.history.length : at
  const history = [...state.history.slice(0, index), entry, ...state.history.slice(index)].slice(-FRAMES_KEPT)
  const previous = state.history[index - 1]
  const next = state.history[index]
  if (entry.event === 'join') {
    const reset = state.reset
    const between = reset !== null && reset.previousAtMs < atMs && atMs <= reset.atMs
    return { state: { history, reset: between ? null : reset }, duplicate: false, ...(between ? { clear: 'a join between the two uplinks was delivered late' } : {}) }
  }
  const judged = (before: FrameEntry | undefined, after: FrameEntry | undefined) =>
    before?.event === 'up' && after?.event === 'up' ? { before, after, step: frameStep(policy, before.fCnt!, after.fCnt!, after.atMs - before.atMs) } : undefined
  const bad = [judged(previous, entry), judged(entry, next)].find((pair) => pair?.step === 'back' || pair?.step === 'repeated')
  if (!bad) return { state: { history, reset: state.reset }, duplicate: false }
  const { before, after, step } = bad
  const restarted = step === 'back' && after.fCnt! <= 1
  const what = step === 'repeated' ? `frame counter ${after.fCnt} repeated ${Math.round((after.atMs - before.atMs) / 60_000)} min later`
    : `frame counter went back from ${before.fCnt} to ${after.fCnt}`
  return {
    state: { history, reset: { atMs: after.atMs, previousAtMs: before.atMs } },
    duplicate: false,
    finding: {
      policy: 'lorawan-fcnt-reset',
      deviceId,
      severity: policy.severity,
      summary: `${what} with no join in between: ${restarted ? 'the device restarted its counter without joining (an ABP reset), re-opening its old counters to replay' : 'a replayed frame, or a counter reset'}`,
      evidence: {
        fCnt: after.fCnt, previousFCnt: before.fCnt, step, at: new Date(after.atMs).toISOString(), previousAt: new Date(before.atMs).toISOString(),
        likely: restarted ? 'abp-reset' : 'replay', deliveredLate: entry === before,
      },
    },
  }
}
