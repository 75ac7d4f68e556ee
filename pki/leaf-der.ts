/**
 * The device-certificate fast path. What all device certificates share
 * (issuer, algorithm, fixed extensions) is encoded once with
 * @peculiar/asn1-x509; each certificate then wraps its few own fields in
 * DER TLVs and is signed with Node's native ECDSA. @peculiar/x509's
 * generator serialised every object tree afresh and parsed each result
 * back, which made 10,000 identities take 24 s instead of seconds
 * (bench/pki.ts).
 */
import { AsnConvert, OctetString } from '@peculiar/asn1-schema'
import * as asn from '@peculiar/asn1-x509'
import { createPrivateKey, sign, type KeyObject } from 'node:crypto'
import { identityUri, type Identity } from './identity.ts'

const ECDSA_WITH_SHA256 = '1.2.840.10045.4.3.2'
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2'

export interface LeafSigner {
  caKey: KeyObject
  /** DER of the parts every device certificate shares, encoded once. */
  issuerDer: Buffer
  algorithmDer: Buffer
  fixedExtensionsDer: Buffer
  /** RFC 5480 §3: an EC key signs only; an RSA key may also encipher (TLS 1.2 RSA key exchange). */
  keyUsageDer: { ec: Buffer, rsa: Buffer }
}

function extensionDer (extnID: string, critical: boolean, value: unknown): Buffer {
  return Buffer.from(AsnConvert.serialize(new asn.Extension({ extnID, critical, extnValue: new OctetString(AsnConvert.serialize(value)) })))
}

export function createLeafSigner (caCertificateDer: ArrayBuffer | Uint8Array, caPrivateKeyPem: string): LeafSigner {
  const ca = AsnConvert.parse(caCertificateDer, asn.Certificate)
  const caKey = createPrivateKey(caPrivateKeyPem)
  if (caKey.asymmetricKeyType !== 'ec') throw new Error('the fleet CA key must be ECDSA P-256')
  const subjectKeyId = ca.tbsCertificate.extensions?.find((e) => e.extnID === asn.id_ce_subjectKeyIdentifier)
  if (!subjectKeyId) throw new Error('the fleet CA certificate has no subject key identifier')
  const keyIdentifier = AsnConvert.parse(subjectKeyId.extnValue, asn.SubjectKeyIdentifier)
  return {
    caKey,
    issuerDer: Buffer.from(AsnConvert.serialize(ca.tbsCertificate.subject)),
    algorithmDer: Buffer.from(AsnConvert.serialize(new asn.AlgorithmIdentifier({ algorithm: ECDSA_WITH_SHA256 }))),
    fixedExtensionsDer: Buffer.concat([
      extensionDer(asn.id_ce_basicConstraints, true, new asn.BasicConstraints({ cA: false })),
      extensionDer(asn.id_ce_extKeyUsage, false, new asn.ExtendedKeyUsage([CLIENT_AUTH])),
      extensionDer(asn.id_ce_authorityKeyIdentifier, false, new asn.AuthorityKeyIdentifier({ keyIdentifier })),
    ]),
    keyUsageDer: {
      ec: extensionDer(asn.id_ce_keyUsage, true, new asn.KeyUsage(asn.KeyUsageFlags.digitalSignature)),
      rsa: extensionDer(asn.id_ce_keyUsage, true, new asn.KeyUsage(asn.KeyUsageFlags.digitalSignature | asn.KeyUsageFlags.keyEncipherment)),
    },
  }
}

export interface LeafFields {
  serialNumber: string
  commonName: string
  identity: Identity
  notBefore: Date
  notAfter: Date
  /** DER SubjectPublicKeyInfo, used as it is. */
  publicKeyDer: Uint8Array
}

// DER tags (X.690 §8): universal types, and the TBSCertificate's context tags.
const SEQUENCE = 0x30
const SET = 0x31
const INTEGER = 0x02
const BIT_STRING = 0x03
const OCTET_STRING = 0x04
const UTF8_STRING = 0x0c
const UTC_TIME = 0x17
const GENERALIZED_TIME = 0x18
const VERSION_TAG = 0xa0 // [0] EXPLICIT Version
const EXTENSIONS_TAG = 0xa3 // [3] EXPLICIT Extensions
const URI_TAG = 0x86 // GeneralName [6] IMPLICIT IA5String
const V3 = Buffer.from([INTEGER, 1, 2])
const COMMON_NAME_OID = Buffer.from([0x06, 0x03, 0x55, 0x04, 0x03]) // 2.5.4.3
const SUBJECT_ALT_NAME_OID = Buffer.from([0x06, 0x03, 0x55, 0x1d, 0x11]) // 2.5.29.17
const RSA_ENCRYPTION_OID = Buffer.from('06092a864886f70d010101', 'hex') // 1.2.840.113549.1.1.1

/**
 * Returns the DER certificate. The per-device parts are plain TLVs around
 * bytes that are already DER (the key's SPKI, the shared extensions);
 * `test/pki` checks every certificate with openssl.
 */
export function signLeafDer (signer: LeafSigner, fields: LeafFields): Buffer {
  const spki = Buffer.from(fields.publicKeyDer)
  const isRsa = spki.includes(RSA_ENCRYPTION_OID)
  const subject = tlv(SEQUENCE, tlv(SET, tlv(SEQUENCE, COMMON_NAME_OID, tlv(UTF8_STRING, Buffer.from(fields.commonName, 'utf8')))))
  const subjectAltName = tlv(SEQUENCE, SUBJECT_ALT_NAME_OID,
    tlv(OCTET_STRING, tlv(SEQUENCE, tlv(URI_TAG, Buffer.from(identityUri(fields.identity), 'ascii')))))
  const tbs = tlv(SEQUENCE,
    tlv(VERSION_TAG, V3),
    tlv(INTEGER, positiveInteger(Buffer.from(fields.serialNumber, 'hex'))),
    signer.algorithmDer,
    signer.issuerDer,
    tlv(SEQUENCE, time(fields.notBefore), time(fields.notAfter)),
    subject,
    spki,
    tlv(EXTENSIONS_TAG, tlv(SEQUENCE, signer.fixedExtensionsDer, isRsa ? signer.keyUsageDer.rsa : signer.keyUsageDer.ec, subjectAltName)),
  )
  const signature = sign('sha256', tbs, { key: signer.caKey, dsaEncoding: 'der' })
  // Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue BIT STRING } (RFC 5280 §4.1)
  return tlv(SEQUENCE, tbs, signer.algorithmDer, tlv(BIT_STRING, Buffer.from([0]), signature))
}

/** RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050, both in Z with seconds. */
function time (date: Date): Buffer {
  const iso = date.toISOString() // YYYY-MM-DDTHH:MM:SS.sssZ
  const digits = iso.slice(0, 19).replace(/[-T:]/g, '') + 'Z'
  return date.getUTCFullYear() < 2050
    ? tlv(UTC_TIME, Buffer.from(digits.slice(2), 'ascii'))
    : tlv(GENERALIZED_TIME, Buffer.from(digits, 'ascii'))
}

/** X.690 §8.3: a leading 1 bit would make the INTEGER negative; a 0x00 byte keeps it positive. */
function positiveInteger (bytes: Buffer): Buffer {
  return (bytes[0]! & 0x80) ? Buffer.concat([Buffer.from([0]), bytes]) : bytes
}

function tlv (tag: number, ...content: Buffer[]): Buffer {
  const body = content.length === 1 ? content[0]! : Buffer.concat(content)
  return Buffer.concat([Buffer.from([tag]), derLength(body.length), body])
}

function derLength (length: number): Buffer {
  if (length < 0x80) return Buffer.from([length])
  const bytes: number[] = []
  for (let n = length; n > 0; n >>= 8) bytes.unshift(n & 0xff)
  return Buffer.from([0x80 | bytes.length, ...bytes])
}

export function derToPem (der: Buffer, label = 'CERTIFICATE'): string {
  const base64 = der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '')
  return `-----BEGIN ${label}-----\n${base64}\n-----END ${label}-----\n`
}
