/**
 * npm run bench:api — the HTTP API at fleet scale: a fleet state of N
 * devices (default 10,000) filled through its real telemetry path, 120
 * readings each, 2 % of them with open alerts, served over real HTTP on
 * loopback; latency of the dashboard's requests, p50 / p99 of 200 each.
 *
 *   npm run bench:api -- [--devices 10000]
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { FleetState } from '../fleet/fleet-state.ts'
import { buildApi } from '../dashboards/api/app.ts'
import type { ApiSource } from '../dashboards/api/source.ts'
import { AlertBook } from '../detection/alert-book.ts'
import { createLogger } from '../shared/logger.ts'
import { printTable, round, saveResults } from './lib/report.ts'

const { values } = parseArgs({ options: { devices: { type: 'string', default: '10000' } } })
const DEVICES = Number(values.devices)
const dir = mkdtempSync(join(tmpdir(), 'placeguard-bench-api-'))
const fleet = new FleetState({ path: join(dir, 'fleet.db') })
const alerts = new AlertBook({ path: join(dir, 'alerts.db') })
const kinds = ['flood', 'energy', 'housing'] as const
const sites = ['riverside', 'northgate', 'harbour', 'old-town']
const started = Date.now()
for (let i = 0; i < DEVICES; i++) {
  const kind = kinds[i % 3]!
  const id = `${kind}-${String(i).padStart(5, '0')}`
  const tags = { site: sites[i % 4]!, device: id }
  for (let n = 0; n < 120; n++) {
    const fields: Record<string, number> = kind === 'flood' ? { level_cm: 80 + n, battery_v: 3.6 } : kind === 'energy' ? { power_kw: 2, voltage_v: 231, energy_kwh: 1000 + n } : { temp_c: 20, humidity_pct: 45, co2_ppm: 600 }
    fleet.onTelemetry({ measurement: kind, tags, fields: { ...fields, seq: n, fw: '3.2.1' }, timestampMs: started - (120 - n) * 10_000 }, started)
  }
  if (i % 50 === 0) fleet.onAlertChange((await alerts.raise({ policy: 'firmware-outdated', deviceId: id, severity: 'medium', summary: 'old firmware', evidence: {} }, tags)))
}
const token = 'bench-token-0123456789abcdef'
const source = {
  fleet, alerts, tokens: [{ token, role: 'viewer' }], rateOf: () => undefined, onAlertChange: () => () => {},
} as unknown as ApiSource
const app = await buildApi(source, { logger: createLogger({ level: 'silent' }), rateLimitPerMinute: 1_000_000 })
await app.listen({ host: '127.0.0.1', port: 0 })
const { port } = app.server.address() as { port: number }

async function timed (path: string): Promise<{ p50: number, p99: number, bytes: number }> {
  const times: number[] = []
  let bytes = 0
  for (let i = 0; i < 200; i++) {
    const t0 = performance.now()
    const response = await fetch(`http://127.0.0.1:${port}${path}`, { headers: { authorization: `Bearer ${token}` } })
    bytes = (await response.arrayBuffer()).byteLength
    if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`)
    times.push(performance.now() - t0)
  }
  times.sort((a, b) => a - b)
  return { p50: times[100]!, p99: times[198]!, bytes }
}

const rows: Array<Record<string, string | number>> = []
for (const path of [
  '/api/fleet',
  '/api/devices?limit=100',
  '/api/devices?limit=100&sort=lastSeenAt&order=desc',
  '/api/devices?limit=100&q=harbour&kind=energy',
  '/api/devices?limit=100&health=alerting',
  `/api/devices/flood-${String(Math.floor((DEVICES - 1) / 3) * 3).padStart(5, '0')}`,
  '/api/alerts?limit=50',
]) {
  const { p50, p99, bytes } = await timed(path)
  rows.push({ request: path, p50Ms: round(p50), p99Ms: round(p99), responseKiB: round(bytes / 1024) })
}
printTable(rows)
const rssMiB = round(process.memoryUsage().rss / 1024 / 1024)
process.stdout.write(`${DEVICES} devices × 120 readings; process RSS ${rssMiB} MiB\n`)
process.stdout.write(`results: ${saveResults('api', { at: new Date().toISOString(), devices: DEVICES, rows, rssMiB })}\n`)
await app.close()
await alerts.close()
rmSync(dir, { recursive: true, force: true })
process.exit(0)
