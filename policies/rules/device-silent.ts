import { formatDuration } from '../../shared/duration.ts'
import type { Finding } from '../finding.ts'
import type { PolicyOf } from '../schema.ts'

export interface SilenceFacts {
  deviceId: string
  kind: 'flood' | 'energy' | 'housing'
  lastSeenMs: number
  /** The device's own learned interval between messages (EWMA), if warm. */
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
 * device-silent (STRIDE D): nothing for `missedIntervals` of the device's
 * expected interval — its learned one, or its kind's configured one before
 * it has a history worth trusting — counted on PlaceGuard's own progress.
 */
export function deviceSilentRule (policy: PolicyOf<'device-silent'>, device: SilenceFacts, nowMs: number): Finding | undefined {
  if (device.messages < policy.params.warmupMessages) return undefined
  const expectedMs = device.learnedIntervalMs ?? policy.params.expectedInterval[device.kind]
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
