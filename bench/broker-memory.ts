/**
 * npx node bench/broker-memory.ts — what one idle mTLS connection costs
 * PlaceGuard's broker, split the way /proc cannot: V8 heap, external and
 * ArrayBuffer memory (Node's buffers), and the rest of RSS (OpenSSL's
 * per-connection state, libuv, the allocator). The broker runs in its own
 * process (bench/lib/broker-memory-child.ts), each figure read after a full
 * GC, before and after D devices connect and sit idle.
 *
 *   npx node bench/broker-memory.ts [--devices 2000] [--snapshots DIR]
 *
 * --snapshots writes a heap snapshot before and after (Chrome DevTools,
 * Memory tab, "Comparison" shows which objects each connection adds).
 */
import { fork } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import mqtt, { type MqttClient } from 'mqtt'
import { FleetPki } from '../pki/index.ts'
import { freePort } from './lib/brokers.ts'
import { printTable, round, saveResults } from './lib/report.ts'

const { values } = parseArgs({ options: { devices: { type: 'string', default: '2000' }, snapshots: { type: 'string' } } })
const DEVICES = Number(values.devices)

interface Memory { mallocHeapKiB: number, rss: number, heapTotal: number, heapUsed: number, external: number, arrayBuffers: number, rssKiB: number, connections: number }

const dataDir = mkdtempSync(join(tmpdir(), 'placeguard-bench-memory-'))
const pki = new FleetPki(dataDir)
await pki.init()
await pki.issueMany(Array.from({ length: DEVICES }, (_, i) => ({ deviceId: `dev-${i}`, kind: 'housing', site: `block-${i % 10}` })))
const paths = pki.paths
const ca = readFileSync(paths.caCert)
const port = await freePort()
const configFile = join(dataDir, 'bench-memory.yaml')
// As bench:broker: rate limit off, every device from 127.0.0.1.
writeFileSync(configFile, 'logLevel: warn\nbroker:\n  publishRatePerSec: 0\n  maxConnections: 50000\n  maxHandshakesPerAddress: 1000\n  maxConnectionsPerAddress: 50000\n')
const child = fork(join(import.meta.dirname, 'lib', 'broker-memory-child.ts'), [dataDir, String(port), configFile], { execArgv: ['--expose-gc'] })
const replies: Array<(message: Record<string, unknown>) => void> = []
child.on('message', (message: Record<string, unknown>) => replies.shift()?.(message))
const ask = (message: object): Promise<Record<string, unknown>> => new Promise((resolve) => { replies.push(resolve); if (Object.keys(message).length) child.send(message) })
await ask({}) // ready

const clients: MqttClient[] = []
try {
  const before = await ask({ measure: true }) as unknown as Memory
  if (values.snapshots) await ask({ snapshot: join(values.snapshots, 'broker-idle-0.heapsnapshot') })
  for (let i = 0; i < DEVICES; i += 50) {
    clients.push(...await Promise.all(Array.from({ length: Math.min(50, DEVICES - i) }, (_, j) => {
      const id = `dev-${i + j}`
      const client = mqtt.connect({
        protocol: 'mqtts', host: '127.0.0.1', port, ca, cert: readFileSync(join(paths.devicesDir, `${id}.crt`)), key: readFileSync(join(paths.devicesDir, `${id}.key`)),
        clientId: id, reconnectPeriod: 0, connectTimeout: 30_000, keepalive: 60,
      })
      return new Promise<MqttClient>((resolve, reject) => { client.once('connect', () => resolve(client)); client.once('error', reject) })
    })))
  }
  await new Promise((resolve) => setTimeout(resolve, 2000))
  const after = await ask({ measure: true }) as unknown as Memory
  if (values.snapshots) await ask({ snapshot: join(values.snapshots, `broker-idle-${DEVICES}.heapsnapshot`) })
  const per = (key: keyof Memory): number => round((after[key] - before[key]) / DEVICES / 1024, 1)
  const rows = [
    { part: 'RSS', kibPerConnection: round((after.rssKiB - before.rssKiB) / DEVICES, 1) },
    { part: 'V8 heap used (JS objects)', kibPerConnection: per('heapUsed') },
    { part: 'V8 heap reserved', kibPerConnection: per('heapTotal') },
    { part: 'external (C++ objects and buffers held by JS)', kibPerConnection: per('external') },
    { part: '  of which ArrayBuffers (Buffers)', kibPerConnection: per('arrayBuffers') },
    { part: 'malloc main arena resident (OpenSSL, libuv, Node C++ objects)', kibPerConnection: round((after.mallocHeapKiB - before.mallocHeapKiB) / DEVICES, 1) },
    { part: 'rest of RSS (V8 heap pages, large mmaps)', kibPerConnection: round((after.rssKiB - after.mallocHeapKiB - before.rssKiB + before.mallocHeapKiB) / DEVICES, 1) },
  ]
  process.stdout.write(`${after.connections} idle mTLS connections (${DEVICES} devices):\n`)
  printTable(rows)
  process.stdout.write(`results: ${saveResults('broker-memory', { at: new Date().toISOString(), devices: DEVICES, before, after, rows })}\n`)
} finally {
  for (const client of clients) client.end(true)
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.send({ stop: true })
  await exited
  pki.close()
  rmSync(dataDir, { recursive: true, force: true })
}
