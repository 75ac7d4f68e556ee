import semver from 'semver'
import type { Finding, PreviousTelemetry, TelemetryObservation } from '../finding.ts'
import type { PolicyOf } from '../schema.ts'

/** firmware-downgrade: the version went backwards since the device's previous message. */
export function firmwareDowngradeRule (policy: PolicyOf<'firmware-downgrade'>, observation: TelemetryObservation, previous: PreviousTelemetry | undefined): Finding | undefined {
  if (!previous || !semver.valid(observation.fw) || !semver.valid(previous.fw) || !semver.lt(observation.fw, previous.fw)) return undefined
  return {
    policy: 'firmware-downgrade',
    deviceId: observation.deviceId,
    severity: policy.severity,
    summary: `firmware went back from ${previous.fw} to ${observation.fw}`,
    evidence: { from: previous.fw, to: observation.fw },
  }
}
