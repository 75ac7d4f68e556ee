import { parentPort, workerData } from 'node:worker_threads'
import { type CaMaterial, type LeafJob, leafSignerFor, signLeavesInline } from './leaf-issuer.ts'
import { generateKeySync } from './key-pairs.ts'

const { ca, jobs } = workerData as { ca: CaMaterial, jobs: LeafJob[] }
const signer = leafSignerFor(ca)
let pending = 0
const results = await signLeavesInline(signer, jobs, (n) => {
  pending += n
  if (pending >= 100) { parentPort!.postMessage({ signed: pending }); pending = 0 }
}, generateKeySync)
if (pending > 0) parentPort!.postMessage({ signed: pending })
parentPort!.postMessage({ results })
