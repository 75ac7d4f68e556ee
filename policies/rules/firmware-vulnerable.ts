import semver from 'semver'
import type { Finding, TelemetryObservation } from '../finding.ts'
import type { PolicyOf } from '../schema.ts'

/** firmware-vulnerable: the reported version is in a denylisted range, with its advisory. */
export function firmwareVulnerableRule (policy: PolicyOf<'firmware-vulnerable'>, observation: TelemetryObservation): Finding | undefined {
  if (!semver.valid(observation.fw)) return undefined
  const entry = policy.params.denylist.find((e) => (e.kind === undefined || e.kind === observation.kind) && semver.satisfies(observation.fw, e.range, { includePrerelease: true }))
  if (!entry) return undefined
  return {
    policy: 'firmware-vulnerable',
    deviceId: observation.deviceId,
    severity: policy.severity,
    summary: `firmware ${observation.fw} is affected by ${entry.advisory}${entry.note ? ` (${entry.note})` : ''}`,
    evidence: { fw: observation.fw, advisory: entry.advisory, range: entry.range, note: entry.note ?? null },
  }
}
