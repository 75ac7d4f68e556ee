/**
 * Device key pairs, apart from certificates.ts so that the signing workers
 * (leaf-issuer-worker.ts) start without loading @peculiar/x509.
 */
import { generateKeyPair, generateKeyPairSync } from 'node:crypto'

export type KeyAlgorithm = 'ecdsa-p256' | 'rsa-2048'

export interface KeyPairPem {
  algorithm: KeyAlgorithm
  privateKeyPem: string
  publicKeyDer: Buffer
}

const ENCODING = { publicKeyEncoding: { type: 'spki', format: 'der' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } } as const

/**
 * Generates a key on libuv's thread pool, encoded there too (PKCS#8 PEM,
 * SPKI DER), so many can be made at once without blocking the JS thread.
 */
export function generateKey (algorithm: KeyAlgorithm): Promise<KeyPairPem> {
  const encoding = ENCODING
  return new Promise((resolve, reject) => {
    const done = (error: Error | null, publicKeyDer: Buffer, privateKeyPem: string): void => {
      if (error) reject(error)
      else resolve({ algorithm, privateKeyPem, publicKeyDer })
    }
    if (algorithm === 'ecdsa-p256') generateKeyPair('ec', { namedCurve: 'P-256', ...encoding }, done)
    else generateKeyPair('rsa', { modulusLength: 2048, ...encoding }, done)
  })
}

/**
 * The same on the calling thread: what a signing worker uses, being one
 * core's worth of work already. The hop to the pool and back cost more
 * than the P-256 key itself (~1 s of CPU in 10,000, bench/pki.ts).
 */
export function generateKeySync (algorithm: KeyAlgorithm): KeyPairPem {
  const { publicKeyEncoding, privateKeyEncoding } = ENCODING
  const pair = algorithm === 'ecdsa-p256'
    ? generateKeyPairSync('ec', { namedCurve: 'P-256', publicKeyEncoding, privateKeyEncoding })
    : generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding, privateKeyEncoding })
  return { algorithm, privateKeyPem: pair.privateKey, publicKeyDer: pair.publicKey }
}
