import { parentPort } from 'node:worker_threads'
import { type CaMaterial, type LeafJob, leafSignerFor, signLeavesInline } from './leaf-issuer.ts'
import { generateKeySync } from './key-pairs.ts'

// Started before its batch is ready (SigningWorkers): the batch comes as the first message.
parentPort!.once('message', ({ ca, jobs }: { ca: CaMaterial, jobs: LeafJob[] }) => { void sign(ca, jobs) })

async function sign (ca: CaMaterial, jobs: LeafJob[]): Promise<void> {
  const signer = leafSignerFor(ca)
  let pending = 0
  // An archived job's tar entries go to the parent with the count, a hundred leaves a message: the archive is written as it grows.
  let entries: Buffer[] = []
  const send = (): void => {
    parentPort!.postMessage(entries.length > 0 ? { signed: pending, entries: Buffer.concat(entries) } : { signed: pending })
    pending = 0
    entries = []
  }
  const results = await signLeavesInline(signer, jobs, (n, signed) => {
    pending += n
    if (signed) entries.push(signed)
    if (pending >= 100) send()
  }, generateKeySync)
  if (pending > 0) send()
  parentPort!.postMessage({ results })
}
