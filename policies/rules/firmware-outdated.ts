import semver from 'semver'
import type { Finding, TelemetryObservation } from '../finding.ts'
import type { PolicyOf } from '../schema.ts'

/** firmware-outdated: the reported version is below the minimum set for the device's kind. */
export function firmwareOutdatedRule (policy: PolicyOf<'firmware-outdated'>, observation: TelemetryObservation): Finding | undefined {
  const minimum = policy.params.minimum[observation.kind]
  if (!minimum || !semver.valid(observation.fw) || semver.gte(observation.fw, minimum)) return undefined
  return {
    policy: 'firmware-outdated',
    deviceId: observation.deviceId,
    severity: policy.severity,
    summary: `firmware ${observation.fw} is below the ${observation.kind} minimum ${minimum}`,
    evidence: { fw: observation.fw, minimum, kind: observation.kind },
  }
}
