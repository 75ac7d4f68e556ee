/**
 * CRLs signed synchronously: the cRLNumber is taken, the CRL signed and the
 * file renamed into place inside one SQLite write transaction, which is the
 * lock every process shares. @peculiar/x509's generator signs through
 * WebCrypto (a promise), and a transaction held across an await would make
 * a second connection in the same thread block on busy_timeout.
 */
import { AsnConvert, OctetString } from '@peculiar/asn1-schema'
import * as asn from '@peculiar/asn1-x509'
import { createPrivateKey, sign } from 'node:crypto'
import { derToPem } from './leaf-der.ts'

const ECDSA_WITH_SHA256 = '1.2.840.10045.4.3.2'

export interface CrlEntry { serialNumber: string, revokedAt: Date }

export interface CrlFields {
  entries: CrlEntry[]
  crlNumber: number
  thisUpdate: Date
  nextUpdate: Date
}

/** Signs a v2 CRL (RFC 5280 §5.1) with the fleet CA's ECDSA key; answers PEM under the label Node's TLS accepts. */
export function signCrlPem (caCertificateDer: ArrayBuffer | Uint8Array, caPrivateKeyPem: string, fields: CrlFields): string {
  const ca = AsnConvert.parse(caCertificateDer, asn.Certificate)
  const key = createPrivateKey(caPrivateKeyPem)
  if (key.asymmetricKeyType !== 'ec') throw new Error('the fleet CA key must be ECDSA P-256')
  const keyId = ca.tbsCertificate.extensions?.find((e) => e.extnID === asn.id_ce_subjectKeyIdentifier)
  if (!keyId) throw new Error('the fleet CA certificate has no subject key identifier')
  const algorithm = new asn.AlgorithmIdentifier({ algorithm: ECDSA_WITH_SHA256 })
  const tbs = new asn.TBSCertList({
    version: asn.Version.v2,
    signature: algorithm,
    issuer: ca.tbsCertificate.subject,
    thisUpdate: new asn.Time(fields.thisUpdate),
    nextUpdate: new asn.Time(fields.nextUpdate),
    revokedCertificates: fields.entries.length === 0
      ? undefined // RFC 5280 §5.1.2.6: absent, not an empty SEQUENCE
      : fields.entries.map((entry) => new asn.RevokedCertificate({
        userCertificate: positiveInteger(entry.serialNumber), revocationDate: new asn.Time(entry.revokedAt),
      })),
    crlExtensions: [
      extension(asn.id_ce_authorityKeyIdentifier, new asn.AuthorityKeyIdentifier({
        keyIdentifier: AsnConvert.parse(keyId.extnValue, asn.SubjectKeyIdentifier),
      })),
      extension(asn.id_ce_cRLNumber, new asn.CRLNumber(fields.crlNumber)),
    ],
  })
  const tbsDer = Buffer.from(AsnConvert.serialize(tbs))
  const signature = sign('sha256', tbsDer, { key, dsaEncoding: 'der' })
  const crl = new asn.CertificateList({ tbsCertList: tbs, signatureAlgorithm: algorithm, signature: new Uint8Array(signature).buffer })
  return derToPem(Buffer.from(AsnConvert.serialize(crl)), 'X509 CRL')
}

/**
 * The cRLNumber of a PEM CRL, or 0 when there is none or it cannot be
 * parsed. Read only to keep numbers increasing past whatever is on disk;
 * the signature is the reader's business (`readCrl`).
 */
export function crlNumberOf (pem: string): number {
  try {
    const base64 = pem.replace(/-----[A-Z0-9 ]+-----|\s/g, '')
    const crl = AsnConvert.parse(Buffer.from(base64, 'base64'), asn.CertificateList)
    const ext = crl.tbsCertList.crlExtensions?.find((e) => e.extnID === asn.id_ce_cRLNumber)
    return ext ? Number(AsnConvert.parse(ext.extnValue, asn.CRLNumber).value) : 0
  } catch {
    return 0
  }
}

function extension (extnID: string, value: unknown): asn.Extension {
  return new asn.Extension({ extnID, critical: false, extnValue: new OctetString(AsnConvert.serialize(value)) })
}

/** X.690 §8.3: a serial whose top bit is set needs a leading 0x00 to stay positive. */
function positiveInteger (hex: string): ArrayBuffer {
  const bytes = Buffer.from(hex.length % 2 ? `0${hex}` : hex, 'hex')
  const positive = (bytes[0]! & 0x80) ? Buffer.concat([Buffer.from([0]), bytes]) : bytes
  return new Uint8Array(positive).buffer
}
