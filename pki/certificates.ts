/**
 * Certificate and CRL construction for the fleet PKI.
 *
 * Built on @peculiar/x509 over Node's WebCrypto rather than node-forge:
 * node-forge cannot make ECDSA certificates or CRLs at all, and its pure-JS
 * RSA-2048 key generation costs ~168 ms a device (10,000 devices ≈ 35 min);
 * native P-256 keys cost ~0.07 ms and a signed certificate ~1.7 ms
 * (docs/pki.md, "Why not node-forge").
 */
import 'reflect-metadata'
import * as x509 from '@peculiar/x509'
import { createPublicKey, randomBytes, webcrypto, type KeyObject } from 'node:crypto'
import { identityUri, type Identity } from './identity.ts'
import { generateKey, type KeyAlgorithm, type KeyPairPem } from './key-pairs.ts'

export { generateKey, type KeyAlgorithm, type KeyPairPem }

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0])

type CryptoKey = webcrypto.CryptoKey

const SIGNING = {
  'ecdsa-p256': { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' },
  'rsa-2048': { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
} as const

export function keyAlgorithmOf (publicKey: KeyObject): KeyAlgorithm | undefined {
  if (publicKey.asymmetricKeyType === 'ec' && publicKey.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ecdsa-p256'
  if (publicKey.asymmetricKeyType === 'rsa' && (publicKey.asymmetricKeyDetails?.modulusLength ?? 0) >= 2048) return 'rsa-2048'
  return undefined
}

/** The CA's signing key, imported once into WebCrypto. */
export interface Signer {
  certificate: x509.X509Certificate
  privateKey: CryptoKey
  algorithm: KeyAlgorithm
}

export async function loadSigner (certificatePem: string, privateKeyPem: string): Promise<Signer> {
  const certificate = new x509.X509Certificate(certificatePem)
  const algorithm = keyAlgorithmOf(createPublicKey(certificatePem))
  if (!algorithm) throw new Error('the CA key is neither ECDSA P-256 nor RSA ≥ 2048')
  return { certificate, privateKey: await importSigningKey(privateKeyPem, algorithm), algorithm }
}

/**
 * RFC 5280 §4.1.2.2: a positive integer of at most 20 octets, unique per CA.
 * 16 random octets with the top bit cleared: unguessable and never negative.
 */
export function newSerialNumber (): string {
  const bytes = randomBytes(16)
  bytes[0] = (bytes[0]! & 0x7f) | 0x01
  return bytes.toString('hex')
}

export async function createCaCertificate (key: KeyPairPem, commonName: string, notAfter: Date): Promise<string> {
  const signingKey = await importSigningKey(key.privateKeyPem, key.algorithm)
  const publicKey = await x509.PublicKey.create(key.publicKeyDer)
  const certificate = await x509.X509CertificateGenerator.create({
    serialNumber: newSerialNumber(),
    subject: `CN=${commonName}, O=PlaceGuard`,
    issuer: `CN=${commonName}, O=PlaceGuard`,
    notBefore: minutesAgo(5),
    notAfter,
    signingAlgorithm: SIGNING[key.algorithm],
    publicKey,
    signingKey,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(publicKey),
    ],
  })
  return certificate.toString('pem')
}

async function importSigningKey (privateKeyPem: string, algorithm: KeyAlgorithm): Promise<CryptoKey> {
  const der = Buffer.from(privateKeyPem.replace(/-----[A-Z ]+-----|\s/g, ''), 'base64')
  return await webcrypto.subtle.importKey('pkcs8', der, SIGNING[algorithm], false, ['sign']) as CryptoKey
}

export interface LeafRequest {
  /** DER SubjectPublicKeyInfo of the holder's key. */
  publicKeyDer: ArrayBuffer | Buffer
  commonName: string
  /** Devices and collectors carry their identity as a SAN URI. */
  identity?: Identity
  dnsNames?: string[]
  ipAddresses?: string[]
  usage: 'client' | 'server'
  notBefore: Date
  notAfter: Date
  serialNumber: string
}

export async function createLeafCertificate (signer: Signer, request: LeafRequest): Promise<x509.X509Certificate> {
  const names: x509.JsonGeneralName[] = [
    ...(request.identity ? [{ type: 'url' as const, value: identityUri(request.identity) }] : []),
    ...(request.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(request.ipAddresses ?? []).map((value) => ({ type: 'ip' as const, value })),
  ]
  const keyUsage = x509.KeyUsageFlags.digitalSignature |
    (request.usage === 'server' ? x509.KeyUsageFlags.keyEncipherment : 0)
  return x509.X509CertificateGenerator.create({
    serialNumber: request.serialNumber,
    subject: `CN=${request.commonName}`,
    issuer: signer.certificate.subject,
    notBefore: request.notBefore,
    notAfter: request.notAfter,
    signingAlgorithm: SIGNING[signer.algorithm],
    publicKey: request.publicKeyDer,
    signingKey: signer.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(keyUsage, true),
      new x509.ExtendedKeyUsageExtension([request.usage === 'server' ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth]),
      new x509.SubjectAlternativeNameExtension(names, false),
      new x509.AuthorityKeyIdentifierExtension(signer.certificate.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId),
    ],
  })
}

export interface ParsedCsr { commonName: string, publicKeyDer: ArrayBuffer, algorithm: KeyAlgorithm | undefined }

/** Parses a PKCS#10 request and verifies its self-signature (proof the requester holds the key). */
export async function parseCsr (pem: string): Promise<ParsedCsr> {
  const csr = new x509.Pkcs10CertificateRequest(pem)
  if (!await csr.verify()) throw new Error('the CSR signature does not verify')
  const commonName = csr.subjectName.getField('CN')[0]
  if (!commonName) throw new Error('the CSR has no subject CN')
  const publicKeyDer = csr.publicKey.rawData
  const algorithm = keyAlgorithmOf(createPublicKey({ key: Buffer.from(publicKeyDer), format: 'der', type: 'spki' }))
  return { commonName, publicKeyDer, algorithm }
}

export function minutesAgo (minutes: number, now = Date.now()): Date {
  return new Date(now - minutes * 60_000)
}

export { x509 }
