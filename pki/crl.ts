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

/** True when the certificate signs itself (issuer = subject, own key verifies). */
export function isSelfSigned (certificateDer: Buffer): boolean {
  try {
    const certificate = new X509Certificate(certificateDer)
    return certificate.checkIssued(certificate) && certificate.verify(certificate.publicKey)
  } catch {
    return false
  }
}

/** True when `certificateDer` is signed by the CA — used to trust the identity in a refused certificate. */
export function isIssuedBy (certificateDer: Buffer, ca: X509Certificate): boolean {
  try {
    const certificate = new X509Certificate(certificateDer)
    return certificate.checkIssued(ca) && certificate.verify(ca.publicKey)
  } catch {
    return false
  }
}
