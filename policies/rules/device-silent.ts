import { formatDuration } from '../../shared/duration.ts'
import type { Finding } from '../finding.ts'
import type { PolicyOf } from '../schema.ts'

export interface SilenceFacts {
  deviceId: string
  kind: 'flood' | 'energy' | 'housing'
  lastSeenMs: number
  /** The device's own interval between messages as learned so far (median of the first few, then an EWMA); none before its second message. */
  learnedIntervalMs: number | undefined
  messages: number
  /**
   * How long, since the device's last message, PlaceGuard itself was
   * behind (stalled, disconnected, reading a backlog): that time is not the
   * device's silence, since it could not have been heard.
   */
  deafMs?: number
  /** The shortest silence judged at all, however short the interval: below it PlaceGuard's own delays could be the cause. */
  minSilenceMs?: number
}

/**
 * The interval a device is judged on. Warm, its own. Before that, once it
 * has shown one interval, the longer of its kind's configured one and what
 * it has shown: a sensor that fails in its first hour is silent too, but a
 * few intervals are not yet a history to hold it to, and a device slower
 * than its kind's setting is not silent for keeping its own pace. One
 * message shows no interval, so it is not judged.
 */
function expectedIntervalOf (policy: PolicyOf<'device-silent'>, device: SilenceFacts): number | undefined {
  const configured = policy.params.expectedInterval[device.kind]
  if (device.messages >= policy.params.warmupMessages) return device.learnedIntervalMs ?? configured
  if (device.learnedIntervalMs === undefined || configured === undefined) return undefined
  return Math.max(configured, device.learnedIntervalMs)
}

/**
 * device-silent (STRIDE D): nothing for `missedIntervals` of the device's
 * expected interval (expectedIntervalOf) counted on PlaceGuard's own progress.
 */
export function deviceSilentRule (policy: PolicyOf<'device-silent'>, device: SilenceFacts, nowMs: number): Finding | undefined {
  const expectedMs = expectedIntervalOf(policy, device)
  if (!expectedMs) return undefined
  const silentMs = nowMs - device.lastSeenMs
  const heardForMs = silentMs - (device.deafMs ?? 0)
  if (heardForMs <= Math.max(policy.params.missedIntervals * expectedMs, device.minSilenceMs ?? 0)) return undefined
  return {
    policy: 'device-silent',
    deviceId: device.deviceId,
    severity: policy.severity,
    summary: `silent for ${formatDuration(silentMs)}, expected a message every ${formatDuration(expectedMs)}`,
    evidence: { silentMs, expectedIntervalMs: Math.round(expectedMs), missedIntervals: policy.params.missedIntervals, lastSeen: new Date(device.lastSeenMs).toISOString() },
  }
}
