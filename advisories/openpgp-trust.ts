/**
 * OpenPGP checks of CSAF advisories (CSAF v2.0 §7.1.19: a detached
 * signature `<file>.asc` beside each advisory) with OpenPGP.js.
 *
 * Trust is what the operator configured, never what a provider says of
 * itself (STRIDE S): a key file given for the provider, or a key that
 * provider-metadata.json lists (`public_openpgp_keys`) whose fingerprint,
 * computed from the key itself, equals one the operator pinned. A key
 * that is revoked or expired now signs nothing that is accepted.
 */
import { readFile, stat } from 'node:fs/promises'
import { createMessage, type Key, type PublicKey, readKeys, readSignature, type Signature, verify } from 'openpgp'

/** A key trusted for one provider, and where it came from (a key file, or the URL provider-metadata.json gave). */
export interface TrustedKey { fingerprint: string, from: string, key: PublicKey }

/** A key file or a fetched key that cannot be used: named, with the reason. */
export class OpenPgpKeyError extends Error {}

/** What the sync is asked to trust for one provider: keys given as files, and fingerprints pinned from provider-metadata.json. */
export interface SignatureTrust {
  keys: TrustedKey[]
  /** Upper-case hex, as `normalFingerprint` gives. */
  pins: string[]
}

export type SignatureVerdict = { valid: true, fingerprint: string } | { valid: false, reason: string }

/** `7D8F 1A2B …` or `7d8f1a2b…` as upper-case hex without spaces; undefined when it is not a v4 (40) or v6 (64) fingerprint. */
export function normalFingerprint (text: string): string | undefined {
  const hex = text.replace(/\s+/g, '').replace(/^0x/i, '').toUpperCase()
  return /^(?:[0-9A-F]{40}|[0-9A-F]{64})$/.test(hex) ? hex : undefined
}

/** Every key in an armored (or binary) key file; a secret key counts as its public half. */
export async function readTrustedKeys (from: string, bytes: Buffer): Promise<TrustedKey[]> {
  let keys: Key[]
  try {
    const text = bytes.toString('latin1')
    keys = text.includes('-----BEGIN PGP ') ? await readKeys({ armoredKeys: text }) : await readKeys({ binaryKeys: new Uint8Array(bytes) })
  } catch (error) {
    throw new OpenPgpKeyError(`${from}: not an OpenPGP public key (${(error as Error).message})`)
  }
  return keys.map((key) => ({ fingerprint: key.getFingerprint().toUpperCase(), from, key: key.toPublic() }))
}

/** An operator's key file (`--openpgp-key`): its keys, or an error naming the file. */
export async function loadKeyFile (path: string, maxBytes = 1 << 20): Promise<TrustedKey[]> {
  let bytes: Buffer
  try {
    if ((await stat(path)).size > maxBytes) throw new OpenPgpKeyError(`${path}: over ${maxBytes} bytes; not a public key file`)
    bytes = await readFile(path)
  } catch (error) {
    if (error instanceof OpenPgpKeyError) throw error
    throw new OpenPgpKeyError(`${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`)
  }
  const keys = await readTrustedKeys(path, bytes)
  if (keys.length === 0) throw new OpenPgpKeyError(`${path}: holds no key`)
  return keys
}

/** Why a key cannot vouch for anything now (revoked, expired, no valid self-signature), or undefined when it can. */
export async function keyProblem (key: TrustedKey, now: Date): Promise<string | undefined> {
  try {
    await key.key.verifyPrimaryKey(now)
    return undefined
  } catch (error) {
    const message = (error as Error).message
    if (/revoked/i.test(message)) return `key ${key.fingerprint} (${key.from}) is revoked`
    if (/expired/i.test(message)) {
      const expires = await key.key.getExpirationTime().catch(() => null)
      return `key ${key.fingerprint} (${key.from}) expired${expires instanceof Date ? ` on ${expires.toISOString()}` : ''}`
    }
    return `key ${key.fingerprint} (${key.from}) cannot be used: ${message}`
  }
}

/**
 * Checks a detached signature over the exact bytes of an advisory
 * (a binary literal: nothing re-encoded, no line endings touched). Valid
 * when one of its signatures is by a trusted key, verifies, and that key
 * may still sign now; otherwise the reason, naming the key.
 */
export function signatureChecker (keys: readonly TrustedKey[], now: () => Date): (content: Buffer, asc: Buffer | undefined) => Promise<SignatureVerdict> {
  return async (content, asc) => {
    if (!asc) return { valid: false, reason: 'no OpenPGP signature (.asc) is published beside it, and a key is configured for this provider' }
    let signature: Signature
    try {
      const text = asc.toString('latin1')
      signature = text.includes('-----BEGIN PGP SIGNATURE-----') ? await readSignature({ armoredSignature: text }) : await readSignature({ binarySignature: new Uint8Array(asc) })
    } catch (error) {
      return { valid: false, reason: `its .asc is not an OpenPGP signature (${(error as Error).message})` }
    }
    const issuers = signature.getSigningKeyIDs()
    const signers = keys.filter((k) => issuers.some((id) => k.key.getKeys(id).length > 0))
    if (signers.length === 0) {
      const named = issuers.map((id) => id.toHex().toUpperCase()).join(', ') || 'no key ID'
      return { valid: false, reason: `its .asc is signed by ${named}, which is not a key configured for this provider` }
    }
    const at = now()
    const result = await verify({ message: await createMessage({ binary: new Uint8Array(content) }), signature, verificationKeys: signers.map((k) => k.key), date: at, format: 'binary' })
    const failures: string[] = []
    for (const outcome of result.signatures) {
      const signer = signers.find((k) => k.key.getKeys(outcome.keyID).length > 0)
      if (!signer) continue
      // Valid when it was made is not enough: a key revoked or expired since signs nothing we take now.
      const problem = await keyProblem(signer, at) ?? await signer.key.getSigningKey(outcome.keyID, at).then(() => undefined, (error: Error) => `signing subkey ${outcome.keyID.toHex().toUpperCase()} of ${signer.fingerprint} cannot sign now (${error.message})`)
      if (problem) {
        failures.push(`it is signed by a key not trusted now: ${problem}`)
        continue
      }
      try {
        await outcome.verified
      } catch (error) {
        failures.push(`its .asc does not verify with key ${signer.fingerprint} (${(error as Error).message})`)
        continue
      }
      return { valid: true, fingerprint: signer.fingerprint }
    }
    return { valid: false, reason: failures.join('; ') || 'its .asc holds no signature over a document' }
  }
}
