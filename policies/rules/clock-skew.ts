import type { Finding, TelemetryObservation } from '../finding.ts'
import type { PolicyOf } from '../schema.ts'

/** clock-skew: the device's `ts` is further than `maxSkew` from when the collector received it. */
export function clockSkewRule (policy: PolicyOf<'clock-skew'>, observation: TelemetryObservation): Finding | undefined {
  const skewMs = observation.ts - observation.receivedAtMs
  if (Math.abs(skewMs) <= policy.params.maxSkew) return undefined
  return {
    policy: 'clock-skew',
    deviceId: observation.deviceId,
    severity: policy.severity,
    summary: `device clock is ${Math.round(Math.abs(skewMs) / 1000)} s ${skewMs > 0 ? 'ahead' : 'behind'} (limit ${policy.params.maxSkew / 1000} s)`,
    evidence: { skewMs, maxSkewMs: policy.params.maxSkew, deviceTs: observation.ts, receivedAt: observation.receivedAtMs },
  }
}
