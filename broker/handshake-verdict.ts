/**
 * The broker's verdict on a completed TLS handshake: the identity the
 * session will carry, or the refusal to report. OpenSSL verified the chain
 * and the CRL (tls-gate.ts leaves `rejectUnauthorized` off so that its
 * verdict can be named here); this reads that verdict and adds the checks a
 * resumed session skips. Nothing is done to the socket.
 */
import type { X509Certificate } from 'node:crypto'
import type { TLSSocket } from 'node:tls'
import type { Clock } from '../shared/clock.ts'
import { printable } from '../shared/ids.ts'
import { certificateOrigin, type Identity, identityFromSubjectAltName, identityName, normalizeSerial } from '../pki/index.ts'
import { type EventFields, identityFields } from './event-reporter.ts'
import { classifyRefusal } from './tls-reasons.ts'

export interface HandshakeContext {
  /** The fleet CA, to tell whether a refused certificate is really ours. */
  ca: X509Certificate
  isRevoked: (serial: string) => boolean
  clock: Clock
  /** `address:port` of the peer (TlsGate.remoteAddressOf). */
  remoteAddress: string
}

export type HandshakeVerdict =
  | { admit: true, identity: Identity, serial: string, notAfter: number, remoteAddress: string }
  /** A certificate refused: `tls-rejected`, reported at most once a period per `who` (TlsGate.reportRejectedCertificate). */
  | { admit: false, rejected: { who: string, fields: EventFields } }
  /** A good certificate that names no PlaceGuard identity: `auth-failed`. */
  | { admit: false, noIdentity: EventFields }

export function judgeHandshake (socket: TLSSocket, context: HandshakeContext): HandshakeVerdict {
  const { remoteAddress } = context
  // The peer as Node's X509Certificate, whose fields are read when asked:
  // getPeerCertificate() builds every field and three fingerprints of the
  // certificate into an object at each call, ~55 µs of every reconnect.
  const peer = socket.getPeerX509Certificate()
  const serial = peer ? normalizeSerial(peer.serialNumber) : undefined
  let failure = socket.authorized ? undefined : String(socket.authorizationError ?? 'NO_CERTIFICATE')
  // Defence in depth: a resumed TLS session skips the CRL and validity checks.
  if (!failure && serial && context.isRevoked(serial)) failure = 'CERT_REVOKED'
  if (!failure && peer && Date.parse(peer.validTo) < context.clock.now()) failure = 'CERT_HAS_EXPIRED'
  if (failure) {
    // The identity in a refused certificate is trusted only if the CA really signed it.
    const refusal = classifyRefusal(peer ? failure : undefined, peer ? certificateOrigin(peer.raw, context.ca) : undefined)
    const identity = refusal.trustIdentity ? identityFromSubjectAltName(peer?.subjectAltName) : undefined
    const commonName = peer ? /^CN=(.*)$/m.exec(peer.subject)?.[1] : undefined
    const claimedId = !identity && commonName ? printable(commonName, 64) : undefined
    return {
      admit: false,
      rejected: {
        who: `${identity ? identityName(identity) : claimedId ?? socket.remoteAddress}:${refusal.code}`,
        fields: { ...(identity ? identityFields(identity) : {}), claimedId, remoteAddress, serial, reason: refusal.reason, code: refusal.code },
      },
    }
  }
  const identity = identityFromSubjectAltName(peer?.subjectAltName)
  if (!identity) {
    return { admit: false, noIdentity: { remoteAddress, serial, reason: 'certificate carries no PlaceGuard identity (SAN URI)', code: 'NO_IDENTITY' } }
  }
  return { admit: true, identity, serial: serial!, notAfter: Date.parse(peer!.validTo), remoteAddress }
}
