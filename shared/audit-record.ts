/**
 * An entry of the operator audit trail as it leaves the trail: what the
 * audit room stores (its AuditEntry adds the previous entry's hash) and what
 * delivery/ sends to the SOC as CEF. Here because both rooms need it and
 * neither may import the other.
 */
export interface AuditRecord {
  seq: number
  /** ISO time the trail stamped it with (milliseconds; PostgreSQL keeps microseconds, the hash covers those). */
  at: string
  /** Who: `operator:3f2a1b0c` (an API token's role and fingerprint), `cli:alice`, `supplier:acme-1`. */
  actor: string
  /** What, as `room.verb`: `alert.acknowledge`, `pki.revoke`… */
  action: string
  subject: string | null
  /** Where from: the remote address, `cli@<host>`. */
  from: string | null
  /** The outcome (requested, done, refused, failed) and the action's particulars. */
  detail: Record<string, unknown>
  /** The entry's hash in the chain: a copy kept by the SOC pins the trail (docs/audit-trail.md). */
  hash: string
}
