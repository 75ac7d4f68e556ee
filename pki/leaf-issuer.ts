/**
 * Signs many leaf certificates fast: keys and signatures run concurrently
 * (libuv's pool does the key generation), and large batches are split over
 * worker threads, one a core. 10,000 identities in seconds, not the ~35 min
 * node-forge's RSA would take (bench/pki.ts).
 */
import { createHash } from 'node:crypto'
import { availableParallelism } from 'node:os'
import { Worker } from 'node:worker_threads'
import { createLeafCertificate, generateKey, type KeyAlgorithm, loadSigner, type Signer } from './certificates.ts'
import type { Identity } from './identity.ts'

export interface LeafJob {
  serialNumber: string
  commonName: string
  identity: Identity
  notBefore: string
  notAfter: string
  keyAlgorithm: KeyAlgorithm
}

export interface SignedLeaf {
  certificatePem: string
  privateKeyPem: string
  fingerprint: string
}

export interface CaMaterial { certificatePem: string, privateKeyPem: string }

const IN_FLIGHT = 32
const WORKER_THRESHOLD = 256

export function sha256Hex (der: ArrayBuffer | Uint8Array): string {
  return createHash('sha256').update(new Uint8Array(der)).digest('hex')
}

export async function signLeaf (signer: Signer, job: LeafJob): Promise<SignedLeaf> {
  const key = await generateKey(job.keyAlgorithm)
  const certificate = await createLeafCertificate(signer, {
    publicKeyDer: key.publicKeyDer,
    commonName: job.commonName,
    identity: job.identity,
    usage: 'client',
    notBefore: new Date(job.notBefore),
    notAfter: new Date(job.notAfter),
    serialNumber: job.serialNumber,
  })
  return { certificatePem: certificate.toString('pem'), privateKeyPem: key.privateKeyPem, fingerprint: sha256Hex(certificate.rawData) }
}

/** Runs the jobs with a bounded number in flight; results keep the jobs' order. */
export async function signLeavesInline (signer: Signer, jobs: LeafJob[], onSigned: (count: number) => void = () => {}): Promise<SignedLeaf[]> {
  const results = new Array<SignedLeaf>(jobs.length)
  let next = 0
  async function lane (): Promise<void> {
    while (next < jobs.length) {
      const index = next++
      results[index] = await signLeaf(signer, jobs[index]!)
      onSigned(1)
    }
  }
  await Promise.all(Array.from({ length: Math.min(IN_FLIGHT, jobs.length) }, lane))
  return results
}

export async function signLeaves (ca: CaMaterial, jobs: LeafJob[], onProgress: (done: number) => void = () => {}): Promise<SignedLeaf[]> {
  let done = 0
  const count = (n: number): void => { done += n; onProgress(done) }
  const workers = Math.min(availableParallelism(), Math.ceil(jobs.length / WORKER_THRESHOLD))
  if (workers <= 1) return signLeavesInline(await loadSigner(ca.certificatePem, ca.privateKeyPem), jobs, count)
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
