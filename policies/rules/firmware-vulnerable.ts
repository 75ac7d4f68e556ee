import semver from 'semver'
import { type AdvisoryIndex, type DeviceProduct, matchEvidence } from '../../shared/advisory-match.ts'
import type { Finding, TelemetryObservation } from '../finding.ts'
import type { PolicyOf } from '../schema.ts'

/** What the engine knows besides the message: the synced advisories, and the device's vendor and model (pki issue --vendor --model). */
export interface AdvisoryContext { index?: AdvisoryIndex, product?: DeviceProduct }

/**
 * firmware-vulnerable: the reported version is affected by a synced
 * advisory (CSAF/OSV, matched on the device's vendor and model, or on a
 * component of the SBOM recorded for its firmware: shared/advisory-match.ts), or lies in a hand-written denylist range.
 * An advisory match carries its id, CVEs, CVSS, remediation and how sure
 * the match is; a firmware that leaves every range no longer holds, and
 * the engine clears the alert.
 */
export function firmwareVulnerableRule (policy: PolicyOf<'firmware-vulnerable'>, observation: TelemetryObservation, context: AdvisoryContext = {}): Finding | undefined {
  const entry = semver.valid(observation.fw)
    ? policy.params.denylist.find((e) => (e.kind === undefined || e.kind === observation.kind) && semver.satisfies(observation.fw, e.range, { includePrerelease: true }))
    : undefined
  const matches = policy.params.advisories && context.index && context.product ? context.index.match(context.product, observation.fw) : []
  if (matches.length > 0) {
    const top = matches[0]!
    const more = matches.length > 1 ? ` and ${matches.length - 1} more advisor${matches.length === 2 ? 'y' : 'ies'}` : ''
    const cves = top.advisory.cves.length > 3 ? [...top.advisory.cves.slice(0, 3), '…'] : top.advisory.cves
    const facts = [...cves, ...(top.advisory.cvss === null ? [] : [`CVSS ${top.advisory.cvss}`]), ...(top.confidence === 'low' ? [`low-confidence match on "${top.matched}"`] : [])]
    // Through the firmware's SBOM: the component is what the operator has to ask the supplier to update.
    const via = top.component ? ` through its component ${top.component.name} ${top.component.version}` : ''
    return {
      policy: 'firmware-vulnerable',
      deviceId: observation.deviceId,
      severity: policy.severity,
      summary: `firmware ${observation.fw} of ${context.product!.vendor} ${context.product!.model} is affected by ${top.advisory.id}${via}${facts.length > 0 ? ` (${facts.join(', ')})` : ''}${more}`,
      evidence: { fw: observation.fw, vendor: context.product!.vendor, model: context.product!.model, ...matchEvidence(matches), denylisted: entry?.advisory ?? null },
    }
  }
  if (!entry) return undefined
  return {
    policy: 'firmware-vulnerable',
    deviceId: observation.deviceId,
    severity: policy.severity,
    summary: `firmware ${observation.fw} is affected by ${entry.advisory}${entry.note ? ` (${entry.note})` : ''}`,
    evidence: { fw: observation.fw, advisory: entry.advisory, range: entry.range, note: entry.note ?? null },
  }
}
