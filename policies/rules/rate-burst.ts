import type { SecurityEvent } from '../../shared/security-events.ts'
import type { Finding } from '../finding.ts'
import type { PolicyOf } from '../schema.ts'

/** A device's publishing rate: its learned baseline and what it does now. */
export interface RateFacts {
  deviceId: string
  kind: 'flood' | 'energy' | 'housing'
  /** Messages per minute now, over the device's own rate window (three of its intervals, at least 10 s). */
  currentPerMinute: number
  /** Messages per minute over the last 10 s: what the kind's ceiling is held to (the broker's budget over that window). Defaults to currentPerMinute. */
  peakPerMinute?: number
  /** Its own baseline (EWMA of messages per minute); undefined before it has one. */
  baselinePerMinute: number | undefined
  /** Messages seen since the device was first seen: warm-up. */
  messages: number
  /** Since the device was first seen, ms: warm-up. */
  ageMs: number
}

/** A baseline worth comparing with: enough messages, over long enough. */
export function isWarm (policy: PolicyOf<'rate-burst'>, messages: number, ageMs: number): boolean {
  return messages >= policy.params.warmupMessages && ageMs >= policy.params.warmupPeriod
}

/** The median and median absolute deviation of a peer group, computed once per group and tick. */
export interface PeerStats { size: number, median: number, mad: number }

/**
 * Judged on its peers alone, a device is a burst only from one message a
 * second. Slower than that, a device far faster than its peers is a
 * configuration to look at (one sensor set to 10 s among others at 5 min),
 * not a flood; and its own baseline, learned from it, cannot say which.
 */
export const PEERS_ONLY_MIN_PER_MINUTE = 60

/** Median and MAD of a population: O(n log n), once per group rather than once per device. */
export function peerStats (population: number[]): PeerStats {
  const sorted = [...population].sort((a, b) => a - b)
  const median = sorted[Math.floor(sorted.length / 2)] ?? 0
  const deviations = sorted.map((v) => Math.abs(v - median)).sort((a, b) => a - b)
  return { size: sorted.length, median, mad: deviations[Math.floor(deviations.length / 2)] ?? 0 }
}

/** Fewer than this many devices in a kind/site group (the device included) and there is no crowd to stand out from. */
export const MIN_PEER_GROUP = 3

/**
 * Among peers, a burst is also at least this many times the peers' median
 * rate now. When a whole site changes pace together (a configuration
 * pushed to every meter), its devices switch seconds apart, and for a
 * rate window the first to switch stand far out of a crowd whose spread
 * is still small: a robust z-score alone called them bursts, though the
 * crowd itself was already doing most of what they did.
 */
export const PEER_MARGIN = 2

/** Median absolute deviation based z-score (Iglewicz & Hoaglin): robust to the outlier it looks for. */
export function robustZ (value: number, population: number[] | PeerStats): number {
  const stats = Array.isArray(population) ? peerStats(population) : population
  if (stats.size < MIN_PEER_GROUP) return 0
  if (stats.mad === 0) return value > stats.median ? Infinity : 0
  return 0.6745 * (value - stats.median) / stats.mad
}

/**
 * rate-burst (STRIDE D), in three regimes so that every fleet shape is covered:
 *
 * - over the kind's absolute `ceilingPerMinute`, always: the broker's
 *   publish budget (sustained rate plus burst, over the rate window) is
 *   the most any well-behaved device can reach, warm or not, with or
 *   without peers — this is what catches a flood in a device's first minute;
 * - warm, with at least two peers of its kind and site: `factor` × its own
 *   baseline *and* a robust z-score ≥ `zScore` among the peers *and*
 *   PEER_MARGIN × the peers' median now, so a fleet-wide change (every
 *   meter switched to a shorter interval, seconds apart) is not a burst;
 * - warm, with at least two peers, `factor` × the peers' median now and the
 *   same robust z-score, from one message a second, with its baseline
 *   `factor` × the median of its peers' baselines: a device that has
 *   flooded since it was first seen learned the flood as its baseline;
 * - warm, with fewer peers: its own baseline alone (a small site has no crowd).
 */
/** What else the peers-only regime compares with: the baselines of the device's site peers, and its kind across the fleet. */
export interface PeerContext {
  /** Learned baselines (msg/min) of the devices of its kind at its site, itself included. */
  peerBaselines?: number[] | PeerStats
  /** Rates now and baselines of every device of its kind, whatever the site: the crowd of a device at a small site. */
  kindRates?: number[] | PeerStats
  kindBaselines?: number[] | PeerStats
}

const statsOf = (population: number[] | PeerStats | undefined): PeerStats | undefined =>
  population === undefined ? undefined : Array.isArray(population) ? peerStats(population) : population

export function rateBurstRule (policy: PolicyOf<'rate-burst'>, device: RateFacts, peers: number[] | PeerStats, context: PeerContext = {}): Finding | undefined {
  const ceiling = policy.params.ceilingPerMinute[device.kind] ?? DEFAULT_CEILING_PER_MINUTE
  const stats = Array.isArray(peers) ? peerStats(peers) : peers
  const baseline = device.baselinePerMinute
  const warm = isWarm(policy, device.messages, device.ageMs) && baseline !== undefined && baseline > 0
  const ratio = warm ? device.currentPerMinute / baseline : undefined
  const rounded = (n: number) => Math.round(n * 10) / 10
  const common = { currentPerMinute: rounded(device.currentPerMinute), baselinePerMinute: baseline === undefined ? null : rounded(baseline), ratio: ratio === undefined ? null : rounded(ratio), peers: stats.size }
  const finding = (summary: string, evidence: Finding['evidence']): Finding => ({ policy: 'rate-burst', deviceId: device.deviceId, severity: policy.severity, summary, evidence: { ...common, ...evidence } })
  const peak = device.peakPerMinute ?? device.currentPerMinute
  if (peak > ceiling) {
    return finding(`${Math.round(peak)} msg/min, over the ceiling of ${ceiling} for a ${device.kind} device${warm ? '' : ' (before its baseline is learned)'}`,
      { judgedOn: 'ceiling', ceilingPerMinute: ceiling, peakPerMinute: rounded(peak) })
  }
  if (!warm || ratio === undefined) return undefined
  const ofBaseline = `${ratio.toFixed(1)}× its baseline of ${baseline!.toFixed(1)}`
  if (stats.size < MIN_PEER_GROUP) {
    if (ratio >= policy.params.factor) {
      return finding(`${Math.round(device.currentPerMinute)} msg/min, ${ofBaseline} (judged on its own baseline: ${stats.size <= 1 ? 'no peers' : 'one peer'} of its kind at its site)`,
        { judgedOn: 'own baseline', factor: policy.params.factor })
    }
    // No crowd at its site: its kind across the fleet says what such devices do.
    const chronic = chronicFlood(policy, device.currentPerMinute, baseline!, statsOf(context.kindRates), statsOf(context.kindBaselines))
    return chronic && finding(`${chronic.summary} (its site has ${stats.size <= 1 ? 'no peers' : 'one peer'} of its kind: judged on its kind across the fleet)`,
      { judgedOn: 'kind across the fleet', ...chronic.evidence })
  }
  const z = robustZ(device.currentPerMinute, stats)
  if (z < policy.params.zScore || device.currentPerMinute < PEER_MARGIN * stats.median) return undefined
  if (ratio >= policy.params.factor) {
    return finding(`${Math.round(device.currentPerMinute)} msg/min, ${ofBaseline}`,
      { judgedOn: 'baseline and peers', factor: policy.params.factor, peerZ: Number.isFinite(z) ? rounded(z) : 'Infinity', zScore: policy.params.zScore, peerMedianPerMinute: rounded(stats.median) })
  }
  const chronic = chronicFlood(policy, device.currentPerMinute, baseline!, stats, statsOf(context.peerBaselines))
  return chronic && finding(chronic.summary, { judgedOn: 'peers', ...chronic.evidence })
}

/**
 * A learned baseline that is a flood's: one message a second or faster,
 * and `factor` × the median of its crowd's (its site peers', or its kind's
 * across the fleet at a small site), a crowd of at least MIN_PEER_GROUP.
 * Such a device is also held to its crowd's pace for silence (engine.ts):
 * back from a flood to its proper pace, it is not silent at its first gap.
 */
export function isChronicBaseline (baseline: number, crowd: PeerStats | undefined, factor: number): boolean {
  return crowd !== undefined && crowd.size >= MIN_PEER_GROUP && baseline >= PEERS_ONLY_MIN_PER_MINUTE && baseline >= factor * crowd.median
}

/**
 * A device that has sent this fast since it was first seen (a flood
 * already running when PlaceGuard started, or a device provisioned to
 * flood) learned the flood as its baseline; its peers still say what its
 * kind does. It stands out of them now (`factor` × their median and the
 * robust z-score), from one message a second, and its baseline stands
 * out of theirs: peers that fell quiet together (a site's backhaul down)
 * leave a device keeping to its usual pace alone above a median of
 * nothing, but their baselines do not fall with them.
 */
function chronicFlood (policy: PolicyOf<'rate-burst'>, currentPerMinute: number, baseline: number, rates: PeerStats | undefined, baselines: PeerStats | undefined):
  { summary: string, evidence: Finding['evidence'] } | undefined {
  if (rates === undefined || baselines === undefined || rates.size < MIN_PEER_GROUP || baselines.size < MIN_PEER_GROUP) return undefined
  const z = robustZ(currentPerMinute, rates)
  if (z < policy.params.zScore || currentPerMinute < PEERS_ONLY_MIN_PER_MINUTE || currentPerMinute < policy.params.factor * rates.median) return undefined
  if (!isChronicBaseline(baseline, baselines, policy.params.factor)) return undefined
  const rounded = (n: number) => Math.round(n * 10) / 10
  return {
    summary: `${Math.round(currentPerMinute)} msg/min, ${rounded(currentPerMinute / rates.median)}× its peers' median of ${rates.median.toFixed(1)}; its own baseline of ${baseline.toFixed(1)} was learned at about this pace, so its peers judge it`,
    evidence: { factor: policy.params.factor, peerZ: Number.isFinite(z) ? rounded(z) : 'Infinity', zScore: policy.params.zScore, peerMedianPerMinute: rounded(rates.median), peerBaselineMedianPerMinute: rounded(baselines.median), peersJudgedOn: rates.size },
  }
}

/**
 * The broker's default publish budget is 5 messages/s sustained with a
 * burst of 50 (broker DEFAULT_BROKER_LIMITS): over a 10 s rate window at
 * most 50 + 5 × 10 = 100 messages, 600 a minute, pass a throttled device.
 */
export const DEFAULT_CEILING_PER_MINUTE = 600

/**
 * The broker's `rate-limited` event: the device went over its publish
 * budget and the broker slowed or dropped it. Before the device is warm
 * there is no baseline to compare with, so the broker's own over-budget
 * verdict is the evidence. A warm device that is merely slowed is left to
 * rateBurstRule (a device flushing a short offline queue is slowed too);
 * one so far over that the broker disconnected it is a burst either way.
 */
export function brokerThrottleRule (policy: PolicyOf<'rate-burst'>, event: SecurityEvent, warm: boolean, messages: number): Finding | undefined {
  const details = event.details ?? {}
  if ((warm && details.disconnected !== true) || !event.deviceId) return undefined
  return {
    policy: 'rate-burst',
    deviceId: event.deviceId,
    severity: policy.severity,
    summary: `over the broker's publish budget after ${messages} message${messages === 1 ? '' : 's'}${warm ? '' : ' (before its baseline is learned)'}: ${event.reason}`,
    evidence: {
      judgedOn: 'broker throttling', reason: event.reason, brokerRatePerSec: typeof details.ratePerSec === 'number' ? details.ratePerSec : null,
      brokerBurst: typeof details.burst === 'number' ? details.burst : null, disconnected: details.disconnected === true, messages, at: event.at,
    },
  }
}
