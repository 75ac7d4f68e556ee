/**
 * A message type of its own room-less kind: the broker emits these events,
 * the collector stores them and the policies judge them, so the type lives
 * in shared/ and none of those rooms imports another for it.
 *
 * The broker's security events (docs/product.md): JSON on
 * `$SYS/placeguard/events/<type>`, readable by the collector role only.
 * The collector's policies turn them into alerts: `cert-rejected` and
 * `cert-revoked-attempt` from `tls-rejected`, `acl-violation` from
 * `acl-denied`, `identity-clone` from `duplicate-identity`,
 * `connection-flapping` from `connect`/`disconnect`.
 */
export const SECURITY_EVENT_TYPES = [
  'connect',
  'disconnect',
  'tls-rejected',
  'auth-failed',
  'acl-denied',
  'duplicate-identity',
  'session-revoked',
  // A live session dropped when its certificate's notAfter passed.
  'session-expired',
  'rate-limited',
  'packet-too-large',
  // A packet breaking MQTT's encoding rules, e.g. ill-formed UTF-8 or U+0000 in a topic [MQTT-1.5.3].
  'protocol-violation',
  'connection-limit',
  'crl-reloaded',
  'crl-invalid',
  // A device refused for a while (automated response or operator), and the end of it.
  'quarantined',
  'quarantine-lifted',
  // A client's offline queue reached its bound and messages for it were dropped (broker/sqlite-persistence.ts).
  'queue-overflow',
  // A supplier connecting or commanding while none of its access windows is open (issue 17).
  'supplier-outside-window',
  // A supplier's command the broker let through: who, which device, the payload's size and SHA-256 (never the payload).
  'supplier-command',
  // Raised by the collector, not the broker: a telemetry payload failed validation.
  'payload-invalid',
] as const

export type SecurityEventType = typeof SECURITY_EVENT_TYPES[number]

/**
 * `tls-rejected` codes the broker names itself; the others are OpenSSL's
 * verification results (CERT_HAS_EXPIRED, ...) or Node's TLS error codes.
 * Detection matches these, not a Node errno a broker group or a later Node
 * might spell differently.
 */
export const HANDSHAKE_CODES = {
  /** The handshake was not finished within the broker's `handshakeTimeoutMs`. */
  timeout: 'HANDSHAKE_TIMEOUT',
  /** The peer closed the connection before the handshake ended; it refused nothing and was refused nothing. */
  abandoned: 'HANDSHAKE_ABANDONED',
} as const

export interface SecurityEvent {
  type: SecurityEventType
  /** ISO 8601, UTC. */
  at: string
  /** From a certificate the fleet CA signed; absent when the peer is not (yet) known. */
  deviceId?: string
  site?: string
  kind?: string
  /** What an unverified certificate claimed (its CN), never trusted as an identity. */
  claimedId?: string
  remoteAddress?: string
  /** A sentence a person can read: "certificate expired", "publish outside own topic". */
  reason: string
  /** Machine-readable cause, e.g. OpenSSL's CERT_HAS_EXPIRED. */
  code?: string
  /** Certificate serial (hex) when one was presented. */
  serial?: string
  topic?: string
  /** Event-specific figures (counts, limits, durations). */
  details?: Record<string, string | number | boolean>
}
