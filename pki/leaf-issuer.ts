/**
 * Signs many leaf certificates fast and writes them with their keys: keys,
 * signatures and file writes run concurrently (libuv's pool does key
 * generation and I/O), and large batches are split over worker threads,
 * one a core. 10,000 identities in seconds, not the ~35 min
 * node-forge's RSA would take (bench/pki.ts).
 */
import { createHash, X509Certificate } from 'node:crypto'
import { availableParallelism } from 'node:os'
import { Worker } from 'node:worker_threads'
import { generateKey, type KeyAlgorithm, type KeyPairPem } from './key-pairs.ts'
import { createLeafSigner, derToPem, type LeafSigner, signLeafDer } from './leaf-der.ts'
import { rmSync, writeFileSync } from 'node:fs'
import type { Identity } from './identity.ts'

export interface LeafJob {
  /** Where the certificate and the private key (0600) are written. */
  certificatePath: string
  privateKeyPath: string
  serialNumber: string
  commonName: string
  identity: Identity
  notBefore: string
  notAfter: string
  keyAlgorithm: KeyAlgorithm
}

export interface SignedLeaf {
  fingerprint: string
  /** SHA-256 of the key's SubjectPublicKeyInfo (DER), hex: what the inventory's one-key-one-identity check compares. */
  spkiSha256: string
}

export interface CaMaterial { certificatePem: string, privateKeyPem: string }

const IN_FLIGHT = 32
const WORKER_THRESHOLD = 256

export function sha256Hex (der: ArrayBuffer | Uint8Array): string {
  return createHash('sha256').update(new Uint8Array(der)).digest('hex')
}

/** Makes a job's key pair: on libuv's pool by default, on the worker's own thread in a worker. */
export type KeyMaker = (algorithm: KeyAlgorithm) => KeyPairPem | Promise<KeyPairPem>

export async function signLeaf (signer: LeafSigner, job: LeafJob, makeKey: KeyMaker = generateKey): Promise<SignedLeaf> {
  const key = await makeKey(job.keyAlgorithm)
  const der = signLeafDer(signer, {
    publicKeyDer: key.publicKeyDer,
    commonName: job.commonName,
    identity: job.identity,
    notBefore: new Date(job.notBefore),
    notAfter: new Date(job.notAfter),
    serialNumber: job.serialNumber,
  })
  // Key first: a certificate file on disk always has its key beside it. Neither
  // is synced here: the caller syncs the whole batch once (batch-sync.ts)
  // before any row is marked active, and `pki reconcile` settles a crash.
  writeNew(job.privateKeyPath, key.privateKeyPem, 0o600)
  writeNew(job.certificatePath, derToPem(der), 0o644)
  return { fingerprint: sha256Hex(der), spkiSha256: sha256Hex(key.publicKeyDer) }
}

/**
 * Creates the file afresh (O_EXCL), so a private key is 0600 from its first
 * byte whatever was at the path before: a stale file is removed first, never
 * written through. No temporary name and rename: the row stays pending until
 * the batch is synced, and reconcile checks the content, so a half file is
 * never taken for a certificate.
 */
function writeNew (path: string, content: string, mode: number): void {
  try {
    writeFileSync(path, content, { mode, flag: 'wx' })
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
    rmSync(path, { force: true })
    writeFileSync(path, content, { mode, flag: 'wx' })
  }
}

export function leafSignerFor (ca: CaMaterial): LeafSigner {
  return createLeafSigner(new X509Certificate(ca.certificatePem).raw, ca.privateKeyPem)
}

/** Runs the jobs with a bounded number in flight; results keep the jobs' order. */
export async function signLeavesInline (signer: LeafSigner, jobs: LeafJob[], onSigned: (count: number) => void = () => {},
  makeKey?: KeyMaker): Promise<SignedLeaf[]> {
  const results = new Array<SignedLeaf>(jobs.length)
  let next = 0
  async function lane (): Promise<void> {
    while (next < jobs.length) {
      const index = next++
      results[index] = await signLeaf(signer, jobs[index]!, makeKey)
      onSigned(1)
    }
  }
  await Promise.all(Array.from({ length: Math.min(IN_FLIGHT, jobs.length) }, lane))
  return results
}

/** How many threads sign and write a batch of `count` identities: one worker a core for a large batch, else the calling thread. */
export function signingThreadsFor (count: number): number {
  return Math.max(1, Math.min(availableParallelism(), Math.ceil(count / WORKER_THRESHOLD)))
}

export async function signLeaves (ca: CaMaterial, jobs: LeafJob[], onProgress: (done: number) => void = () => {}): Promise<SignedLeaf[]> {
  let done = 0
  const count = (n: number): void => { done += n; onProgress(done) }
  const workers = signingThreadsFor(jobs.length)
  if (workers <= 1) return signLeavesInline(leafSignerFor(ca), jobs, count)
  const share = Math.ceil(jobs.length / workers)
  const parts = await Promise.all(Array.from({ length: workers }, (_, i) =>
    runWorker(ca, jobs.slice(i * share, (i + 1) * share), count)))
  return parts.flat()
}

function runWorker (ca: CaMaterial, jobs: LeafJob[], count: (n: number) => void): Promise<SignedLeaf[]> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./leaf-issuer-worker.ts', import.meta.url), { workerData: { ca, jobs } })
    worker.on('message', (message: { signed: number } | { results: SignedLeaf[] }) => {
      if ('signed' in message) count(message.signed)
      else resolve(message.results)
    })
    worker.once('error', reject)
    worker.once('exit', (code) => { if (code !== 0) reject(new Error(`certificate worker exited with code ${code}`)) })
  })
}
