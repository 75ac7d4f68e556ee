/**
 * The device-certificate fast path: one ASN.1 serialisation of the
 * TBSCertificate (@peculiar/asn1-x509) and a native ECDSA signature, with
 * no re-parse of the result. @peculiar/x509's generator parses every
 * certificate it makes back into objects, which cost half its time
 * (bench/pki.ts: 10,000 identities must take seconds, not minutes).
 */
import { AsnConvert, OctetString } from '@peculiar/asn1-schema'
import * as asn from '@peculiar/asn1-x509'
import { createPrivateKey, sign, type KeyObject } from 'node:crypto'
import { identityUri, type Identity } from './identity.ts'

const ECDSA_WITH_SHA256 = '1.2.840.10045.4.3.2'
const COMMON_NAME = '2.5.4.3'
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2'
const EC_PUBLIC_KEY = '1.2.840.10045.2.1'

export interface LeafSigner {
  caKey: KeyObject
  issuer: asn.Name
  /** Extensions every device certificate shares, built once. */
  fixedExtensions: asn.Extension[]
  /** RFC 5480 §3: an EC key signs only; an RSA key may also encipher (TLS 1.2 RSA key exchange). */
  keyUsage: { ec: asn.Extension, rsa: asn.Extension }
}

function extension (extnID: string, critical: boolean, value: unknown): asn.Extension {
  return new asn.Extension({ extnID, critical, extnValue: new OctetString(AsnConvert.serialize(value)) })
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
    issuer: ca.tbsCertificate.subject,
    fixedExtensions: [
      extension(asn.id_ce_basicConstraints, true, new asn.BasicConstraints({ cA: false })),
      extension(asn.id_ce_extKeyUsage, false, new asn.ExtendedKeyUsage([CLIENT_AUTH])),
      extension(asn.id_ce_authorityKeyIdentifier, false, new asn.AuthorityKeyIdentifier({ keyIdentifier })),
    ],
    keyUsage: {
      ec: extension(asn.id_ce_keyUsage, true, new asn.KeyUsage(asn.KeyUsageFlags.digitalSignature)),
      rsa: extension(asn.id_ce_keyUsage, true, new asn.KeyUsage(asn.KeyUsageFlags.digitalSignature | asn.KeyUsageFlags.keyEncipherment)),
    },
  }
}

export interface LeafFields {
  serialNumber: string
  commonName: string
  identity: Identity
  notBefore: Date
  notAfter: Date
  /** DER SubjectPublicKeyInfo. */
  publicKeyDer: Uint8Array
}

/** Returns the DER certificate. */
export function signLeafDer (signer: LeafSigner, fields: LeafFields): Buffer {
  const algorithm = new asn.AlgorithmIdentifier({ algorithm: ECDSA_WITH_SHA256 })
  const subjectPublicKeyInfo = AsnConvert.parse(fields.publicKeyDer, asn.SubjectPublicKeyInfo)
  const isEc = subjectPublicKeyInfo.algorithm.algorithm === EC_PUBLIC_KEY
  const tbs = new asn.TBSCertificate({
    version: asn.Version.v3,
    serialNumber: Uint8Array.from(Buffer.from(fields.serialNumber, 'hex')).buffer,
    signature: algorithm,
    issuer: signer.issuer,
    validity: new asn.Validity({ notBefore: fields.notBefore, notAfter: fields.notAfter }),
    subject: new asn.Name([new asn.RelativeDistinguishedName([
      new asn.AttributeTypeAndValue({ type: COMMON_NAME, value: new asn.AttributeValue({ utf8String: fields.commonName }) }),
    ])]),
    subjectPublicKeyInfo,
    extensions: new asn.Extensions([
      ...signer.fixedExtensions,
      isEc ? signer.keyUsage.ec : signer.keyUsage.rsa,
      extension(asn.id_ce_subjectAltName, false, new asn.SubjectAlternativeName([
        new asn.GeneralName({ uniformResourceIdentifier: identityUri(fields.identity) }),
      ])),
    ]),
  })
  const tbsDer = Buffer.from(AsnConvert.serialize(tbs))
  const signature = sign('sha256', tbsDer, { key: signer.caKey, dsaEncoding: 'der' })
  // Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue BIT STRING } (RFC 5280 §4.1)
  return derSequence([tbsDer, Buffer.from(AsnConvert.serialize(algorithm)), derBitString(signature)])
}

function derLength (length: number): Buffer {
  if (length < 0x80) return Buffer.from([length])
  const bytes: number[] = []
  for (let n = length; n > 0; n >>= 8) bytes.unshift(n & 0xff)
  return Buffer.from([0x80 | bytes.length, ...bytes])
}

function derSequence (parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts)
  return Buffer.concat([Buffer.from([0x30]), derLength(body.length), body])
}

function derBitString (bytes: Buffer): Buffer {
  return Buffer.concat([Buffer.from([0x03]), derLength(bytes.length + 1), Buffer.from([0x00]), bytes])
}

export function derToPem (der: Buffer, label = 'CERTIFICATE'): string {
  const base64 = der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '')
  return `-----BEGIN ${label}-----\n${base64}\n-----END ${label}-----\n`
}
