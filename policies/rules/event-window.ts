import type { SecurityEvent } from '../../broker/index.ts'
import type { PolicyId } from '../catalogue.ts'
import type { Finding } from '../finding.ts'
import type { Severity } from '../schema.ts'

type WindowPolicyId = 'cert-rejected' | 'cert-revoked-attempt' | 'acl-violation' | 'identity-clone' | 'connection-flapping' | 'payload-invalid'

/**
 * Which broker (or collector) security event counts towards which policy.
 * A refused certificate is grouped by the identity it names — trusted
 * (`deviceId`) or merely claimed (`claimedId`) — so one attacker trying
 * many ids shows as many findings, and many attempts as one.
 */
export function policyForEvent (event: SecurityEvent): { policy: WindowPolicyId, key: string } | undefined {
  const who = event.deviceId ?? (event.claimedId ? `claimed:${event.claimedId}` : `address:${(event.remoteAddress ?? 'unknown').replace(/:\d+$/, '')}`)
  switch (event.type) {
    case 'tls-rejected': return { policy: event.code === 'CERT_REVOKED' ? 'cert-revoked-attempt' : 'cert-rejected', key: who }
    case 'acl-denied': return { policy: 'acl-violation', key: who }
    case 'duplicate-identity': return { policy: 'identity-clone', key: who }
    case 'connect': return event.deviceId?.startsWith('collector:') ? undefined : { policy: 'connection-flapping', key: who }
    case 'payload-invalid': return { policy: 'payload-invalid', key: who }
    default: return undefined
  }
}

export interface WindowPolicy { id: PolicyId, severity: Severity, params: { window: number } & ({ threshold: number } | { connects: number }) }

/**
 * Counts events per key in a sliding window; a finding once the count
 * reaches the threshold. `times` is the caller's bounded state: this
 * returns the trimmed list to keep (never more than the threshold's worth).
 */
export function eventWindowRule (policy: WindowPolicy, key: string, times: number[], event: SecurityEvent, nowMs: number): { times: number[], finding: Finding | undefined } {
  const threshold = 'threshold' in policy.params ? policy.params.threshold : policy.params.connects
  const kept = [...times.filter((t) => nowMs - t <= policy.params.window), nowMs].slice(-threshold)
  if (kept.length < threshold) return { times: kept, finding: undefined }
  const minutes = Math.round(policy.params.window / 60_000)
  return {
    times: kept,
    finding: {
      policy: policy.id,
      deviceId: key,
      severity: policy.severity,
      summary: `${threshold} × ${event.type} within ${minutes} min: ${event.reason}`,
      evidence: {
        count: kept.length, threshold, windowMs: policy.params.window, firstAt: new Date(kept[0]!).toISOString(), lastAt: new Date(nowMs).toISOString(),
        reason: event.reason, code: event.code ?? null, remoteAddress: event.remoteAddress ?? null, topic: event.topic ?? null,
      },
    },
  }
}
