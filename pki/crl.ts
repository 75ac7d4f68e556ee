import { X509Certificate } from 'node:crypto'
import { x509 } from './certificates.ts'

export interface CrlSummary {
  /** Revoked serials, lower-case hex without leading zeros. */
  revokedSerials: Set<string>
  nextUpdate: Date | undefined
}

/** Serial numbers compare equal however they were printed (case, leading zeros). */
export function normalizeSerial (serial: string): string {
  return serial.toLowerCase().replace(/^0+(?=.)/, '')
}

/** Parses a PEM CRL and checks it is signed by the CA; throws with the reason otherwise. */
export async function readCrl (crlPem: string, caPem: string): Promise<CrlSummary> {
  const crl = new x509.X509Crl(crlPem.replace(/X509 CRL/g, 'CRL'))
  const ca = new x509.X509Certificate(caPem)
  if (!await crl.verify({ publicKey: ca.publicKey })) throw new Error('the CRL is not signed by the fleet CA')
  return {
    revokedSerials: new Set(crl.entries.map((entry) => normalizeSerial(entry.serialNumber))),
    nextUpdate: crl.nextUpdate,
  }
}

export type CertificateOrigin = 'fleet-ca' | 'self-signed' | 'foreign' | 'unreadable'

/**
 * Who really signed a presented certificate (signatures checked, not
 * names): the fleet CA — so the identity in it can be trusted even when
 * it is refused as expired or revoked — the certificate itself, or someone else.
 */
export function certificateOrigin (certificateDer: Buffer, ca: X509Certificate): CertificateOrigin {
  let certificate: X509Certificate
  try {
    certificate = new X509Certificate(certificateDer)
  } catch {
    return 'unreadable'
  }
  if (certificate.checkIssued(ca) && certificate.verify(ca.publicKey)) return 'fleet-ca'
  if (certificate.checkIssued(certificate) && certificate.verify(certificate.publicKey)) return 'self-signed'
  return 'foreign'
}
