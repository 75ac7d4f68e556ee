import type { Finding } from '../finding.ts'
import type { PolicyOf } from '../schema.ts'

export interface SilenceFacts {
  deviceId: string
  kind: 'flood' | 'energy' | 'housing'
  lastSeenMs: number
  /** The device's own learned interval between messages (EWMA), if warm. */
  learnedIntervalMs: number | undefined
  messages: number
}

/**
 * device-silent: nothing for `missedIntervals` of the device's expected
 * interval — its learned one, or its kind's configured one before it has
 * a history worth trusting.
 */
export function deviceSilentRule (policy: PolicyOf<'device-silent'>, device: SilenceFacts, nowMs: number): Finding | undefined {
  if (device.messages < policy.params.warmupMessages) return undefined
  const expectedMs = device.learnedIntervalMs ?? policy.params.expectedInterval[device.kind]
  if (!expectedMs) return undefined
  const silentMs = nowMs - device.lastSeenMs
  if (silentMs <= policy.params.missedIntervals * expectedMs) return undefined
  return {
    policy: 'device-silent',
    deviceId: device.deviceId,
    severity: policy.severity,
    summary: `silent for ${Math.round(silentMs / 1000)} s, expected a message every ${Math.round(expectedMs / 1000)} s`,
    evidence: { silentMs, expectedIntervalMs: Math.round(expectedMs), missedIntervals: policy.params.missedIntervals, lastSeen: new Date(device.lastSeenMs).toISOString() },
  }
}
