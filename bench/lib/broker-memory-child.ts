/**
 * A PlaceGuard broker in a child process that reports its own memory, for
 * bench/broker-memory.ts: what /proc cannot split (V8 heap, external and
 * ArrayBuffer memory, and a heap snapshot to see which objects hold it).
 * Built as `placeguard broker` builds it (app/broker-process.ts: brokerFor).
 * Run with --expose-gc; messages on the IPC channel:
 *   { measure: true } → process.memoryUsage() after a full GC, plus VmRSS
 *   { snapshot: FILE } → a heap snapshot written there
 */
import { readFileSync } from 'node:fs'
import { writeHeapSnapshot } from 'node:v8'
import { brokerFor } from '../../app/broker-process.ts'
import { loadConfig } from '../../app/index.ts'
import { createLogger } from '../../shared/logger.ts'

const [dataDir, port, configFile] = process.argv.slice(2) as [string, string, string]
const config = loadConfig({ file: configFile, flags: { dataDir, mqttPort: Number(port), mqttHost: '127.0.0.1' } })
const broker = brokerFor(config, createLogger({ level: 'warn' }))
await broker.listen()

const gc = (globalThis as { gc?: () => void }).gc!
process.on('message', (message: { measure?: boolean, snapshot?: string, stop?: boolean }) => {
  if (message.measure) {
    gc()
    gc()
    const rssKiB = Number(/VmRSS:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))![1])
    process.send!({ ...process.memoryUsage(), rssKiB, mallocHeapKiB: mallocHeapKiB(), connections: broker.connectionCount })
  } else if (message.snapshot) {
    process.send!({ snapshot: writeHeapSnapshot(message.snapshot) })
  } else if (message.stop) {
    void broker.close().then(() => process.exit(0))
  }
})
process.send!({ ready: true })

/**
 * Resident KiB of the `[heap]` mapping: glibc's main malloc arena, where
 * OpenSSL, libuv and Node's C++ objects allocate on the main thread (V8's
 * heap and large allocations are separate anonymous mappings).
 */
function mallocHeapKiB (): number {
  const smaps = readFileSync('/proc/self/smaps', 'utf8')
  const start = smaps.indexOf('[heap]')
  if (start < 0) return 0
  return Number(/\nRss:\s+(\d+) kB/.exec(smaps.slice(start))![1])
}
