import type { CertificateOrigin } from '../pki/index.ts'
import { HANDSHAKE_CODES } from '../shared/security-events.ts'

/**
 * OpenSSL's verification results (`socket.authorizationError`) in words an
 * operator reads in an alert. Codes not listed keep OpenSSL's own text.
 */
const REASONS: Record<string, string> = {
  CERT_HAS_EXPIRED: 'certificate expired',
  CERT_NOT_YET_VALID: 'certificate not yet valid',
  CERT_REVOKED: 'certificate revoked',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'self-signed certificate',
  SELF_SIGNED_CERT_IN_CHAIN: 'self-signed certificate in chain',
  UNABLE_TO_GET_ISSUER_CERT: 'certificate from an unknown CA',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'certificate from an unknown CA',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'certificate from an unknown CA',
  CERT_SIGNATURE_FAILURE: 'certificate signature invalid',
  UNSUPPORTED_CERTIFICATE_PURPOSE: 'certificate not issued for client authentication',
  INVALID_PURPOSE: 'certificate not issued for client authentication',
  UNABLE_TO_GET_CRL: 'no CRL for the issuer',
  CRL_HAS_EXPIRED: 'the broker CRL has lapsed (run `placeguard pki crl`)',
  CRL_NOT_YET_VALID: 'the broker CRL is not yet valid',
}

export const NO_CERTIFICATE = 'NO_CERTIFICATE'

export function describeTlsFailure (code: string | undefined): { code: string, reason: string } {
  const key = code ?? NO_CERTIFICATE
  if (key === NO_CERTIFICATE) return { code: key, reason: 'no client certificate' }
  return { code: key, reason: REASONS[key] ?? key.toLowerCase().replaceAll('_', ' ') }
}

/** Failures where the certificate is ours (signature checked separately) but not usable now. */
const OWN_CA_FAILURES = new Set(['CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'CERT_REVOKED'])

/**
 * Names a refusal by what the certificate is, not by which check OpenSSL
 * happened to run first: with CRL checking on, a foreign or self-signed
 * certificate fails as UNABLE_TO_GET_CRL before its issuer is even looked at.
 */
export function classifyRefusal (code: string | undefined, origin: CertificateOrigin | undefined): { code: string, reason: string, trustIdentity: boolean } {
  if (code === undefined) return { ...describeTlsFailure(undefined), trustIdentity: false }
  if (origin === 'fleet-ca') return { ...describeTlsFailure(code), trustIdentity: OWN_CA_FAILURES.has(code) }
  if (origin === 'self-signed') return { ...describeTlsFailure('DEPTH_ZERO_SELF_SIGNED_CERT'), trustIdentity: false }
  if (code === 'UNABLE_TO_GET_CRL') return { ...describeTlsFailure('UNABLE_TO_GET_ISSUER_CERT'), trustIdentity: false }
  return { ...describeTlsFailure(code), trustIdentity: false }
}

/** Node's codes for a handshake whose peer went away: ECONNRESET is its "socket hang up". */
const PEER_WENT_AWAY: ReadonlySet<string> = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED'])

/**
 * Names a handshake that failed before any certificate verdict. A peer
 * that closed mid-handshake becomes HANDSHAKE_ABANDONED (Node's own code
 * kept as `details.cause`), so that the reader, and detection, need not
 * know Node's errnos; any other failure keeps Node's or OpenSSL's code.
 */
export function describeHandshakeError (error: { code?: string, message: string }): { code: string, reason: string, cause?: string } {
  if (error.code !== undefined && PEER_WENT_AWAY.has(error.code)) {
    return { code: HANDSHAKE_CODES.abandoned, reason: `TLS handshake abandoned: the peer closed the connection (${error.message})`, cause: error.code }
  }
  return { code: error.code ?? 'TLS_ERROR', reason: `TLS handshake failed: ${error.message}` }
}
