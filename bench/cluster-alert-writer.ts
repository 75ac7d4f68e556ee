/**
 * One writer of bench/cluster-alert-writes.ts' two-writer run over SQLite,
 * in a worker thread: the SQLite store is synchronous, so two books in one
 * thread would take turns and never meet on the file's write lock. Opens
 * its own AlertBook on the shared file, waits for the start signal, raises
 * every key in order and answers how long that took.
 */
import { parentPort, workerData } from 'node:worker_threads'
import { AlertBook } from '../detection/index.ts'
import type { PolicyId } from '../shared/alert-contract.ts'

export interface AlertWriterData {
  path: string
  policy: PolicyId
  deviceIds: string[]
  writer: string
  /** An Int32Array's buffer: 0 until the main thread says go. */
  start: SharedArrayBuffer
}

const { path, policy, deviceIds, writer, start } = workerData as AlertWriterData
const book = new AlertBook({ path })
Atomics.wait(new Int32Array(start), 0, 0)
const began = performance.now()
// A book on SQLite answers at once (a plain value, never a Promise); a failed write throws here and fails the worker.
for (const deviceId of deviceIds) {
  void book.raise({ policy, deviceId, severity: 'high', summary: `bench: ${writer} saw it`, evidence: { writer } })
}
const ms = performance.now() - began
void book.close()
parentPort!.postMessage({ ms })
