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
import { tarEntry } from './identity-archive.ts'

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
  /** Into an archive instead of two files: the members' names; the tar entries come back to the caller, who writes the archive. */
  archive?: { keyMember: string, certificateMember: string }
}

export interface SignedLeaf {
  fingerprint: string
  /** SHA-256 of the key's SubjectPublicKeyInfo (DER), hex: what the inventory's one-key-one-identity check compares. */
  spkiSha256: string
}

/** A leaf just signed; an archived job's tar entries (key, then certificate) ride with it until they are written. */
interface SignedLeafWithEntries extends SignedLeaf { entries?: Buffer }

/** Receives the tar entries of archived jobs as they are signed, in no particular order. */
export type EntrySink = (entries: Uint8Array) => void

export interface CaMaterial { certificatePem: string, privateKeyPem: string }

const IN_FLIGHT = 32
const WORKER_THRESHOLD = 256

export function sha256Hex (der: ArrayBuffer | Uint8Array): string {
  return createHash('sha256').update(new Uint8Array(der)).digest('hex')
}

/** Makes a job's key pair: on libuv's pool by default, on the worker's own thread in a worker. */
export type KeyMaker = (algorithm: KeyAlgorithm) => KeyPairPem | Promise<KeyPairPem>

export async function signLeaf (signer: LeafSigner, job: LeafJob, makeKey: KeyMaker = generateKey): Promise<SignedLeafWithEntries> {
  const key = await makeKey(job.keyAlgorithm)
  const der = signLeafDer(signer, {
    publicKeyDer: key.publicKeyDer,
    commonName: job.commonName,
    identity: job.identity,
    notBefore: new Date(job.notBefore),
    notAfter: new Date(job.notAfter),
    serialNumber: job.serialNumber,
  })
  const signed = { fingerprint: sha256Hex(der), spkiSha256: sha256Hex(key.publicKeyDer) }
  if (job.archive) {
    const mtime = Math.floor(Date.now() / 1000)
    // Key first here too: a member cut short by a power cut is the last one, so a whole certificate has its key before it.
    return { ...signed, entries: Buffer.concat([tarEntry(job.archive.keyMember, key.privateKeyPem, 0o600, mtime), tarEntry(job.archive.certificateMember, derToPem(der), 0o644, mtime)]) }
  }
  // Key first: a certificate file on disk always has its key beside it. Neither
  // is synced here: the caller syncs the whole batch once (batch-sync.ts)
  // before any row is marked active, and `pki reconcile` settles a crash.
  writeNew(job.privateKeyPath, key.privateKeyPem, 0o600)
  writeNew(job.certificatePath, derToPem(der), 0o644)
  return signed
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
export async function signLeavesInline (signer: LeafSigner, jobs: LeafJob[], onSigned: (count: number, entries?: Buffer) => void = () => {},
  makeKey?: KeyMaker): Promise<SignedLeaf[]> {
  const results = new Array<SignedLeaf>(jobs.length)
  let next = 0
  async function lane (): Promise<void> {
    while (next < jobs.length) {
      const index = next++
      const { entries, ...signed } = await signLeaf(signer, jobs[index]!, makeKey)
      results[index] = signed
      onSigned(1, entries)
    }
  }
  await Promise.all(Array.from({ length: Math.min(IN_FLIGHT, jobs.length) }, lane))
  return results
}

/** How many threads sign and write a batch of `count` identities: one worker a core for a large batch, else the calling thread. */
export function signingThreadsFor (count: number): number {
  return Math.max(1, Math.min(availableParallelism(), Math.ceil(count / WORKER_THRESHOLD)))
}

/**
 * The worker threads that will sign a batch, started before the batch's
 * bookkeeping (jobs, pending rows) rather than after it: a worker takes
 * about 0.4 s here to load the DER modules, and that now runs beside the
 * main thread's work. Take them with `signLeaves`, or `close` them.
 */
export class SigningWorkers {
  readonly #started: StartedWorker[]

  constructor (count: number) {
    const threads = signingThreadsFor(count)
    this.#started = threads <= 1 ? [] : Array.from({ length: threads }, startWorker)
  }

  take (): StartedWorker[] {
    return this.#started.splice(0)
  }

  close (): void {
    for (const { worker } of this.take()) void worker.terminate()
  }
}

interface StartedWorker {
  worker: Worker
  /** Rejects once the worker fails or exits: listened for from its start, so nothing it does before its batch is missed. */
  ended: Promise<never>
}

function startWorker (): StartedWorker {
  const worker = new Worker(new URL('./leaf-issuer-worker.ts', import.meta.url))
  const ended = new Promise<never>((_resolve, reject) => {
    worker.once('error', reject)
    worker.once('exit', (code) => reject(new Error(`certificate worker exited with code ${code}`)))
  })
  ended.catch(() => {}) // a worker closed unused ends this way
  return { worker, ended }
}

export async function signLeaves (ca: CaMaterial, jobs: LeafJob[], onProgress: (done: number) => void = () => {},
  onEntries: EntrySink = () => {}, workers: SigningWorkers = new SigningWorkers(jobs.length)): Promise<SignedLeaf[]> {
  let done = 0
  const count = (n: number, entries?: Uint8Array): void => {
    // Entries first: by the time the count says a leaf is done, it is in the archive's file.
    if (entries) onEntries(entries)
    done += n
    onProgress(done)
  }
  const started = workers.take()
  if (started.length === 0) return signLeavesInline(leafSignerFor(ca), jobs, count)
  const share = Math.ceil(jobs.length / started.length)
  try {
    const parts = await Promise.all(started.map((worker, i) => runWorker(worker, ca, jobs.slice(i * share, (i + 1) * share), count)))
    return parts.flat()
  } finally {
    // One that failed leaves the others signing for nothing.
    for (const { worker } of started) void worker.terminate()
  }
}

function runWorker ({ worker, ended }: StartedWorker, ca: CaMaterial, jobs: LeafJob[], count: (n: number, entries?: Uint8Array) => void): Promise<SignedLeaf[]> {
  const results = new Promise<SignedLeaf[]>((resolve) => {
    worker.on('message', (message: { signed: number, entries?: Uint8Array } | { results: SignedLeaf[] }) => {
      if ('signed' in message) count(message.signed, message.entries)
      else resolve(message.results)
    })
  })
  worker.postMessage({ ca, jobs })
  return Promise.race([results, ended])
}
