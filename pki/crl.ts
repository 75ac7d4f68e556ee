import { X509Certificate } from 'node:crypto'
import { x509 } from './certificates.ts'

export interface CrlSummary {
  /** Revoked serials, lower-case hex without leading zeros. */
  revokedSerials: Set<string>
  /** When the CA signed this CRL; a newer CRL never has an older one (RFC 5280 §5.1.2.4). */
  thisUpdate: Date
  nextUpdate: Date | undefined
  /** The cRLNumber extension, if present: it only ever grows (RFC 5280 §5.2.3), so a lower one is a replay. */
  crlNumber: bigint | undefined
}

const CRL_NUMBER_OID = '2.5.29.20'

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
    thisUpdate: crl.thisUpdate,
    nextUpdate: crl.nextUpdate,
    crlNumber: crlNumberOf(crl),
  }
}

function crlNumberOf (crl: InstanceType<typeof x509.X509Crl>): bigint | undefined {
  const extension = crl.getExtension(CRL_NUMBER_OID)
  return extension ? derNonNegativeInteger(new Uint8Array(extension.value)) : undefined
}

/**
 * A DER INTEGER as a bigint. cRLNumber may be up to 20 octets (RFC 5280
 * §5.2.3), beyond a JavaScript number, hence by hand rather than through
 * asn1-schema's number converter.
 */
function derNonNegativeInteger (der: Uint8Array): bigint {
  if (der[0] !== 0x02) throw new Error('the CRL number is not an INTEGER')
  let length = der[1] ?? 0
  let offset = 2
  if (length & 0x80) {
    const octets = length & 0x7f
    if (octets === 0 || octets > 2) throw new Error('the CRL number has an invalid length')
    length = 0
    for (let i = 0; i < octets; i++) length = length * 256 + (der[offset++] ?? 0)
  }
  const content = der.subarray(offset, offset + length)
  if (content.length !== length || length === 0 || length > 21) throw new Error('the CRL number has an invalid length')
  if (content[0]! & 0x80) throw new Error('the CRL number is negative')
  return BigInt(`0x${Buffer.from(content).toString('hex')}`)
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
