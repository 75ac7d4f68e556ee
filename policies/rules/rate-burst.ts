import type { Finding } from '../finding.ts'
import type { PolicyOf } from '../schema.ts'

/** A device's publishing rate: its learned baseline and what it does now. */
export interface RateFacts {
  deviceId: string
  /** Messages per minute now (over the engine's short rate window). */
  currentPerMinute: number
  /** Its own baseline (EWMA of messages per minute). */
  baselinePerMinute: number
  /** Messages seen since the device was first seen: warm-up. */
  messages: number
}

/** Median absolute deviation based z-score (Iglewicz & Hoaglin): robust to the outlier it looks for. */
export function robustZ (value: number, population: number[]): number {
  if (population.length < 3) return 0
  const sorted = [...population].sort((a, b) => a - b)
  const median = sorted[Math.floor(sorted.length / 2)]!
  const deviations = sorted.map((v) => Math.abs(v - median)).sort((a, b) => a - b)
  const mad = deviations[Math.floor(deviations.length / 2)]!
  if (mad === 0) return value > median ? Infinity : 0
  return 0.6745 * (value - median) / mad
}

/**
 * rate-burst: the device publishes `factor` times faster than its own
 * baseline *and* stands out among its peers (same kind and site) by a
 * robust z-score — a fleet-wide change (every meter switched to a shorter
 * interval) is not a burst. New devices are left alone until warm.
 */
export function rateBurstRule (policy: PolicyOf<'rate-burst'>, device: RateFacts, peersPerMinute: number[]): Finding | undefined {
  if (device.messages < policy.params.warmupMessages || device.baselinePerMinute <= 0) return undefined
  const ratio = device.currentPerMinute / device.baselinePerMinute
  const z = robustZ(device.currentPerMinute, peersPerMinute)
  if (ratio < policy.params.factor || z < policy.params.zScore) return undefined
  return {
    policy: 'rate-burst',
    deviceId: device.deviceId,
    severity: policy.severity,
    summary: `${Math.round(device.currentPerMinute)} msg/min, ${ratio.toFixed(1)}× its baseline of ${device.baselinePerMinute.toFixed(1)}`,
    evidence: { currentPerMinute: device.currentPerMinute, baselinePerMinute: device.baselinePerMinute, ratio: Math.round(ratio * 10) / 10, factor: policy.params.factor, peerZ: Number.isFinite(z) ? Math.round(z * 10) / 10 : 'Infinity', zScore: policy.params.zScore, peers: peersPerMinute.length },
  }
}
