import { HANDSHAKE_CODES, type SecurityEvent } from '../../shared/security-events.ts'
import { visibleText } from '../../shared/untrusted-text.ts'
import type { PolicyId } from '../catalogue.ts'
import type { Finding } from '../finding.ts'
import type { Severity } from '../schema.ts'

type WindowPolicyId = 'cert-rejected' | 'cert-revoked-attempt' | 'acl-violation' | 'identity-clone' | 'connection-flapping' | 'payload-invalid' | 'supplier-access-outside-window'

/** Distinct claimed ids remembered per source address; more are counted, not kept (STRIDE D: the attacker picks them). */
export const MAX_CLAIMS_PER_ADDRESS = 16
/** A claimed id is shown at most this long in evidence. */
const CLAIM_SHOWN_CHARS = 64

/** The source address without its port: one attacker, however many handshakes. */
export function addressKey (remoteAddress: string | undefined): string {
  return `address:${(remoteAddress ?? 'unknown').replace(/:\d+$/, '')}`
}

/**
 * Which broker (or collector) security event counts towards which policy,
 * and whose window it fills. A trusted identity (`deviceId`, from a
 * certificate the fleet CA signed) keys its own window. Anything else —
 * a self-signed or foreign certificate's CN (`claimedId`), or no
 * certificate at all — is grouped by source address: the CN is chosen by
 * whoever connects, so keying on it let one address open an alert per
 * handshake (STRIDE S and D). The claim stays in the evidence.
 */
export function policyForEvent (event: SecurityEvent): { policy: WindowPolicyId, key: string } | undefined {
  const who = event.deviceId ?? addressKey(event.remoteAddress)
  switch (event.type) {
    case 'tls-rejected':
      // A peer that closed mid-handshake refused nothing and was refused nothing: a device on a poor link, or
      // one that gave up on a broker slow to answer. One is no attack; many from one address are a connection
      // that keeps coming and going.
      if (event.code === HANDSHAKE_CODES.abandoned) return { policy: 'connection-flapping', key: who }
      return { policy: event.code === 'CERT_REVOKED' ? 'cert-revoked-attempt' : 'cert-rejected', key: who }
    case 'acl-denied': return { policy: 'acl-violation', key: who }
    case 'duplicate-identity': return { policy: 'identity-clone', key: who }
    case 'connect': return event.deviceId?.startsWith('collector:') ? undefined : { policy: 'connection-flapping', key: who }
    case 'payload-invalid': return { policy: 'payload-invalid', key: who }
    // What the device sent could not be read at all: an MQTT packet that does not parse, a string that is
    // not UTF-8, a packet over the broker's size limit. The broker closed the connection; to the operator it
    // is the same finding as telemetry that fails its schema (a corrupting firmware, or a fuzzer on its identity).
    case 'protocol-violation':
    case 'packet-too-large':
      return { policy: 'payload-invalid', key: who }
    // Keyed by the supplier's id (its certificate's, the broker's `deviceId`): one alert per supplier, refreshed while it keeps trying.
    case 'supplier-outside-window': return { policy: 'supplier-access-outside-window', key: who }
    default: return undefined
  }
}

export interface WindowPolicy { id: PolicyId, severity: Severity, params: { window: number } & ({ threshold: number } | { connects: number }) }

/** One key's memory: event times inside the window, and the ids an unverified peer claimed. */
export interface WindowState {
  times: number[]
  /** Distinct claimed ids (already escaped and capped), at most MAX_CLAIMS_PER_ADDRESS. */
  claims: string[]
  /** Claims seen beyond that bound. */
  claimsNotKept: number
}

export const emptyWindow = (): WindowState => ({ times: [], claims: [], claimsNotKept: 0 })

/**
 * Counts events per key in a sliding window; a finding once the count
 * reaches the threshold. The state returned is bounded: never more times
 * than the threshold's worth, never more claims than the cap; claims are
 * forgotten with the window that held them.
 */
export function eventWindowRule (policy: WindowPolicy, key: string, state: WindowState, event: SecurityEvent, nowMs: number): { state: WindowState, finding: Finding | undefined } {
  const threshold = 'threshold' in policy.params ? policy.params.threshold : policy.params.connects
  const live = state.times.filter((t) => nowMs - t <= policy.params.window)
  const kept = [...live, nowMs].slice(-threshold)
  const fresh = live.length === 0 ? emptyWindow() : state
  const claim = event.deviceId === undefined && event.claimedId !== undefined ? visibleText(event.claimedId, CLAIM_SHOWN_CHARS) : undefined
  let { claims, claimsNotKept } = fresh
  if (claim !== undefined && !claims.includes(claim)) {
    if (claims.length < MAX_CLAIMS_PER_ADDRESS) claims = [...claims, claim]
    else claimsNotKept++
  }
  const next: WindowState = { times: kept, claims, claimsNotKept }
  if (kept.length < threshold) return { state: next, finding: undefined }
  const minutes = Math.round(policy.params.window / 60_000)
  return {
    state: next,
    finding: {
      policy: policy.id,
      deviceId: key,
      severity: policy.severity,
      // The summary holds only what PlaceGuard wrote: the broker's reason, never a claimed id.
      summary: `${threshold} × ${event.type} within ${minutes} min: ${visibleText(event.reason, 120)}`,
      evidence: {
        count: kept.length, threshold, windowMs: policy.params.window, firstAt: new Date(kept[0]!).toISOString(), lastAt: new Date(nowMs).toISOString(),
        reason: visibleText(event.reason, 200), code: event.code ?? null, remoteAddress: event.remoteAddress ?? null, topic: event.topic === undefined ? null : visibleText(event.topic, 200),
        ...(claims.length > 0 ? { claimedIds: JSON.stringify(claims), claimedIdsNotShown: claimsNotKept } : {}),
      },
    },
  }
}
