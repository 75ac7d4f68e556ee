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
   * Since when PlaceGuard itself has been keeping up (the end of its last
   * stall or backlog): silence is counted from here at the earliest, since
   * a device cannot be heard while the collector is not listening.
   */
  listeningSinceMs?: number
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
  const heardForMs = nowMs - Math.max(device.lastSeenMs, device.listeningSinceMs ?? 0)
  if (heardForMs <= policy.params.missedIntervals * expectedMs) return undefined
  return {
    policy: 'device-silent',
    deviceId: device.deviceId,
    severity: policy.severity,
    summary: `silent for ${formatDuration(silentMs)}, expected a message every ${formatDuration(expectedMs)}`,
    evidence: { silentMs, expectedIntervalMs: Math.round(expectedMs), missedIntervals: policy.params.missedIntervals, lastSeen: new Date(device.lastSeenMs).toISOString() },
  }
}
