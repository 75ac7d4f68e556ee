/**
 * npm run bench:sim — how big a fleet one simulator process drives.
 *
 * For each fleet size (default 1k, 5k, 10k) a fresh PlaceGuard broker runs
 * in its own process on 127.0.0.1 and `runSimulation` connects every device
 * with its own certificate, then publishes QoS 1 telemetry for a while.
 * Reported: connect time and devices connected per second, sustained
 * acknowledged msg/s, PUBACK p50/p99, client errors, simulator memory per
 * device. Identities are issued once and reused across sizes.
 *
 *   npm run bench:sim -- [--sizes 1000,5000,10000] [--interval 2s] [--duration 30s]
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { loopbackAddress, runSimulation, type SimulationSummary } from '../agent-sim/index.ts'
import { FleetPki } from '../pki/index.ts'
import { parseDuration } from '../shared/duration.ts'
import { freePort, startPlaceGuard } from './lib/brokers.ts'
import { printTable, round, saveResults } from './lib/report.ts'

const { values } = parseArgs({ options: {
  sizes: { type: 'string', default: '1000,5000,10000' },
  interval: { type: 'string', default: '2s' },
  duration: { type: 'string', default: '30s' },
} })
const sizes = values.sizes.split(',').map(Number)
const intervalMs = parseDuration('--interval', values.interval)
const durationMs = parseDuration('--duration', values.duration)

const dataDir = mkdtempSync(join(tmpdir(), 'placeguard-bench-sim-'))
const pki = new FleetPki(dataDir)
await pki.init()
pki.close()
const rows: Array<Record<string, string | number>> = []
const summaries: Record<string, SimulationSummary> = {}
try {
  for (const devices of sizes) {
    const port = await freePort()
    // The simulator is what is measured: the broker's per-device rate limit stays at its default.
    const broker = await startPlaceGuard(dataDir, port, { maxConnections: 50_000 })
    try {
      process.stderr.write(`${devices} devices…\n`)
      const summary = await runSimulation({ dataDir, brokerUrl: `mqtts://127.0.0.1:${port}`, devices, intervalMs, durationMs, seed: 1, connectConcurrency: 100, localAddress: loopbackAddress })
      summaries[devices] = summary
      rows.push({
        devices,
        connected: summary.connected,
        connectS: round(summary.connectMs / 1000, 1),
        connectsPerSec: Math.round(summary.connected / (summary.connectMs / 1000)),
        ackedPerSec: summary.ackedPerSec,
        expectedPerSec: Math.round(devices / (intervalMs / 1000)),
        p50Ms: summary.publishAckP50Ms ?? '-',
        p99Ms: summary.publishAckP99Ms ?? '-',
        failed: summary.failed,
        connectErrors: summary.connectErrors,
        kibPerDevice: summary.memoryPerDeviceKiB,
        provisionS: round(summary.provisionMs / 1000, 1),
      })
      process.stderr.write(`${JSON.stringify(rows.at(-1))}\n`)
    } finally {
      await broker.stop()
    }
  }
} finally {
  rmSync(dataDir, { recursive: true, force: true })
}
printTable(rows)
process.stdout.write(`results: ${saveResults('sim', { at: new Date().toISOString(), intervalMs, durationMs, summaries })}\n`)
