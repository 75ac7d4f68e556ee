/**
 * npm run bench:spool — what one incoming message costs the collector
 * while the spool refuses writes (full, or a disk error), as the backlog of
 * received-but-not-durable messages grows. The collector must stay O(1)
 * per message whatever the backlog (it used to re-serialise the whole
 * backlog for every message: 2.5 ms at 1,500 pending, ~34 ms at 20,000).
 *
 * A PlaceGuard broker process holds a backlog for the collector's
 * persistent session; the collector (in this process, on a full spool)
 * then reads it, and its CPU time is sampled over windows of 1,000
 * messages at several backlog depths.
 *
 *   npm run bench:spool -- [--backlog 20000]
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { Writable } from 'node:stream'
import mqtt from 'mqtt'
import { Collector } from '../collector/collector.ts'
import { Spool } from '../collector/spool.ts'
import { FleetPki } from '../pki/index.ts'
import { createLogger } from '../shared/logger.ts'
import { freePort, startPlaceGuard } from './lib/brokers.ts'
import { printTable, round, saveResults } from './lib/report.ts'

const { values } = parseArgs({ options: { backlog: { type: 'string', default: '20000' } } })
const backlog = Number(values.backlog)
const WINDOW = 1_000
const depths = [1_000, 1_500, 5_000, 10_000, 19_000].filter((depth) => depth + WINDOW <= backlog)

const dataDir = mkdtempSync(join(tmpdir(), 'placeguard-bench-spool-'))
const pki = new FleetPki(dataDir)
await pki.init()
await pki.issue({ deviceId: 'flood-bench', kind: 'flood', site: 'bench' })
const paths = pki.paths
pki.close()
const port = await freePort()
const broker = await startPlaceGuard(dataDir, port, { publishRatePerSec: 0 })
const brokerUrl = `mqtts://127.0.0.1:${port}`

// A spool filled to the brim with points smaller than any the device sends: it refuses every batch.
const spool = new Spool({ path: join(dataDir, 'spool.db'), maxBytes: 20_000 })
const filler = { measurement: 'flood', tags: { site: 'b', device: 'f' }, fields: { seq: 0, fw: '1.0.0', level_cm: 1, battery_v: 3 } }
for (let i = 0; spool.bytes + 200 < spool.maxBytes; i++) spool.append([{ ...filler, timestampMs: 1_700_000_000_000 + i }])

const quiet = createLogger({ level: 'error', destination: new Writable({ write (_chunk, _encoding, done) { done() } }) })
const collectorOptions = {
  brokerUrl, clientId: 'collector-bench', spool, logger: quiet, maxPending: backlog + 1_000,
  tls: { caCert: paths.caCert, cert: paths.collectorCert, key: paths.collectorKey },
}

// First session: subscribe, then leave; the broker queues the backlog for the persistent session.
const first = new Collector(collectorOptions)
await first.start()
await first.stop()

const device = await mqtt.connectAsync(brokerUrl, {
  ca: readFileSync(paths.caCert),
  cert: readFileSync(join(paths.devicesDir, 'flood-bench.crt')),
  key: readFileSync(join(paths.devicesDir, 'flood-bench.key')),
  clientId: 'flood-bench', reconnectPeriod: 0,
})
const ts = Date.now()
for (let sent = 0; sent < backlog; sent += 1_000) {
  await Promise.all(Array.from({ length: Math.min(1_000, backlog - sent) }, (_, i) => device.publishAsync('places/bench/flood/flood-bench/telemetry',
    JSON.stringify({ ts: ts + sent + i, seq: sent + i, fw: '1.2.0', level_cm: 40, battery_v: 3.6 }), { qos: 1 })))
}
await device.endAsync()
process.stderr.write(`published ${backlog}\n`)

// Second session: reads the backlog onto the full spool; CPU per message at each depth.
const collector = new Collector(collectorOptions)
const samples = new Map<number, { cpu: NodeJS.CpuUsage, at: number }>()
const rows: Array<Record<string, string | number>> = []
const done = new Promise<void>((resolve) => {
  collector.on('telemetry', () => {
    const received = collector.metrics.telemetryStored + 1 // this one included (counted after the event)
    if (depths.includes(received)) samples.set(received, { cpu: process.cpuUsage(), at: performance.now() })
    const start = samples.get(received - WINDOW)
    if (start && depths.includes(received - WINDOW)) {
      const cpu = process.cpuUsage(start.cpu)
      rows.push({ backlog: received - WINDOW, cpuMsPerMessage: round((cpu.user + cpu.system) / 1_000 / WINDOW, 3), wallMsPerMessage: round((performance.now() - start.at) / WINDOW, 3) })
    }
    if (received >= backlog) resolve()
  })
})
await collector.start()
const progress = setInterval(() => process.stderr.write(`read ${collector.metrics.received}\n`), 2_000)
await done
clearInterval(progress)
await collector.stop()
spool.close()
await broker.stop()
rmSync(dataDir, { recursive: true, force: true })

printTable(rows)
process.stdout.write(`saved ${saveResults('spool', { backlog, window: WINDOW, rows })}\n`)
