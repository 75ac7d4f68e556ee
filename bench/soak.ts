/**
 * npm run bench:soak — PlaceGuard under a long, realistic load, as it is deployed.
 *
 * `placeguard up` (broker + collector + API, embedded store) and
 * `placeguard sim` run as two processes, the way an operator runs them. The
 * fleet publishes for the whole run while the scenario injects one incident
 * of every device-caused policy at staggered times. Each minute the bench
 * samples the `up` process's RSS (/proc) and V8 heap (its /metrics), and the
 * simulator's RSS. At the end it checks the three promises of a soak:
 *
 *   - memory flat: the heap's and RSS's trend over the second half of the run,
 *     in KiB per minute (a leak shows as a steady positive slope), plotted;
 *   - zero loss: every clean device's messages are in the store with no gap
 *     in its seq, and the store holds at least what the broker acknowledged
 *     to clean devices;
 *   - zero false alerts: no device alert on a device the scenario left alone,
 *     and every injected incident detected.
 *
 *   npm run bench:soak -- [--devices 2000] [--interval 10s] [--duration 30m] [--sample 60s]
 *
 * Figures go to stdout, bench/results/soak-<date>.json and docs/perf/soak-memory.svg.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { parseArgs } from 'node:util'
import type { TruthRecord } from '../agent-sim/index.ts'
import { type Alert } from '../shared/alert-contract.ts'
import { SYSTEM_ALERT_IDS } from '../policies/index.ts'
import { parseDuration } from '../shared/duration.ts'
import { freePort } from './lib/brokers.ts'
import { printTable, progressBar, round, saveResults } from './lib/report.ts'

const { values } = parseArgs({ options: {
  devices: { type: 'string', default: '2000' },
  interval: { type: 'string', default: '10s' },
  duration: { type: 'string', default: '30m' },
  sample: { type: 'string', default: '60s' },
  scenario: { type: 'string', default: join(import.meta.dirname, '..', 'agent-sim', 'scenarios', 'soak.yaml') },
  keep: { type: 'boolean', default: false },
} })
const ROOT = join(import.meta.dirname, '..')
const CLI = join(ROOT, 'bin', 'placeguard.js')
const durationMs = parseDuration('--duration', values.duration)
const sampleMs = parseDuration('--sample', values.sample)
const token = 'soak-bench-operator-token-0123456789'
const dataDir = mkdtempSync(join(tmpdir(), 'placeguard-bench-soak-'))
const mqttPort = await freePort()
const httpPort = await freePort()
const api = `http://127.0.0.1:${httpPort}`

/** Output to files, never to a pipe nobody drains: a full pipe stalls a process (issue 12). */
function start (name: string, args: string[], env: Record<string, string> = {}): ChildProcess {
  const out = openSync(join(dataDir, `${name}.log`), 'a')
  return spawn(process.execPath, [CLI, '--data-dir', dataDir, ...args], {
    env: { ...process.env, PLACEGUARD_LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', out, out],
  })
}

async function until (what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return
    await new Promise((resolve) => setTimeout(resolve, 500))
  }
  throw new Error(`${what} not reached within ${timeoutMs / 1000} s; logs in ${dataDir}`)
}

const authorized = { authorization: `Bearer ${token}` }
async function metrics (): Promise<Map<string, number>> {
  const text = await (await fetch(`${api}/metrics`, { headers: authorized })).text()
  return new Map([...text.matchAll(/^([a-z_]+)(?:\{[^}]*\})? ([0-9.e+-]+)$/gm)].map((m) => [m[1]!, Number(m[2])]))
}

function rssKiB (pid: number): number {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1])
  } catch {
    return Number.NaN
  }
}

const up = start('up', ['up', '--mqtt-host', '127.0.0.1', '--mqtt-port', String(mqttPort), '--http-host', '127.0.0.1', '--http-port', String(httpPort)],
  { PLACEGUARD_API_TOKENS: `${token}:operator` })
await until('the API answering /readyz', async () => (await fetch(`${api}/readyz`)).ok, 60_000)
const truthFile = join(dataDir, 'truth.jsonl')
const simOut = join(dataDir, 'sim-summary.json')
const sim = spawn(process.execPath, [CLI, '--data-dir', dataDir, 'sim', '--devices', values.devices, '--broker', `mqtts://127.0.0.1:${mqttPort}`,
  '--interval', values.interval, '--duration', values.duration, '--scenario', values.scenario, '--truth', truthFile, '--seed', '7', '--json'],
{ env: { ...process.env, PLACEGUARD_LOG_LEVEL: 'warn' }, stdio: ['ignore', openSync(simOut, 'w'), openSync(join(dataDir, 'sim.log'), 'w')] })
const simExited = new Promise<number>((resolve) => sim.once('exit', (code) => resolve(code ?? 1)))

interface Sample { minute: number, upRssMiB: number, upHeapMiB: number, simRssMiB: number, stored: number, connected: number, openAlerts: number }
const samples: Sample[] = []
const startedAt = Date.now()
const bar = progressBar('soak', Math.ceil(durationMs / 1000))
process.stderr.write(`soak: ${values.devices} devices every ${values.interval} for ${values.duration}; data in ${dataDir}\n`)
const sampler = setInterval(() => {
  void metrics().then((m) => {
    samples.push({
      minute: round((Date.now() - startedAt) / 60_000, 1),
      upRssMiB: round(rssKiB(up.pid!) / 1024, 1),
      upHeapMiB: round((m.get('placeguard_nodejs_heap_size_used_bytes') ?? Number.NaN) / 2 ** 20, 1),
      simRssMiB: round(rssKiB(sim.pid!) / 1024, 1),
      stored: m.get('placeguard_telemetry_stored_total') ?? m.get('placeguard_messages_received_total') ?? Number.NaN,
      connected: m.get('placeguard_devices_connected') ?? Number.NaN,
      openAlerts: m.get('placeguard_alerts_open') ?? Number.NaN,
    })
  }).catch((error: unknown) => process.stderr.write(`sample failed: ${(error as Error).message}\n`))
}, sampleMs)
const progress = setInterval(() => bar.update(Math.min(Math.round((Date.now() - startedAt) / 1000), Math.ceil(durationMs / 1000))), 1_000)
const simCode = await simExited
clearInterval(sampler)
clearInterval(progress)
bar.stop()
const summary = JSON.parse(readFileSync(simOut, 'utf8').trim().split('\n').pop() ?? '{}') as { acked?: number, sent?: number, failed?: number, devices?: number }

// Let the spool drain into the embedded store before reading it.
await until('the spool draining', async () => (await metrics()).get('placeguard_spool_points') === 0, 120_000)
const alerts: Alert[] = []
for (let cursor: string | null = ''; cursor !== null;) {
  const page = await (await fetch(`${api}/api/alerts?limit=500${cursor ? `&cursor=${cursor}` : ''}`, { headers: authorized })).json() as { items: Alert[], next: string | null }
  alerts.push(...page.items)
  cursor = page.next
}
const upExited = new Promise<void>((resolve) => up.once('exit', () => resolve()))
up.kill('SIGTERM')
await upExited

const truth = readFileSync(truthFile, 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line) as TruthRecord)
const injected = new Set(truth.map((t) => t.deviceId))
/** An unverified claim is alerted by source address (`address:<ip>`), the ids it claimed in the evidence. */
const claimsOf = (alert: Alert): string[] => typeof alert.evidence.claimedIds === 'string' ? JSON.parse(alert.evidence.claimedIds) as string[] : []
const devicesOf = (alert: Alert): string[] => claimsOf(alert).length > 0 ? claimsOf(alert) : [alert.deviceId]
// System alerts (a sink, the pipeline, a storm) are keyed on what failed, not on a device; reported apart.
const isSystem = (alert: Alert): boolean => (SYSTEM_ALERT_IDS as readonly string[]).includes(alert.policy)
const deviceAlerts = alerts.filter((a) => !isSystem(a))
const systemAlerts = alerts.filter(isSystem)
const falseAlerts = deviceAlerts.filter((a) => !devicesOf(a).some((id) => injected.has(id)))
const missed = truth.filter((t) => !alerts.some((a) => a.policy === t.policy && devicesOf(a).includes(t.deviceId)))

// Zero loss, from the store itself: per clean device, the seqs stored must run without a gap.
const db = new DatabaseSync(join(dataDir, 'telemetry.db'), { readOnly: true })
const rows = db.prepare(`SELECT device, json_extract(fields, '$.seq') AS seq FROM points WHERE measurement IN ('flood', 'energy', 'housing')`).all() as Array<{ device: string, seq: number }>
db.close()
const seqs = new Map<string, Set<number>>()
for (const { device, seq } of rows) {
  if (!seqs.has(device)) seqs.set(device, new Set())
  seqs.get(device)!.add(Number(seq))
}
let stored = 0
let gaps = 0
const gapDevices: string[] = []
for (const [device, set] of seqs) {
  stored += set.size
  if (injected.has(device)) continue
  const max = Math.max(...set)
  const min = Math.min(...set)
  const missing = max - min + 1 - set.size
  if (missing > 0) {
    gaps += missing
    gapDevices.push(device)
  }
}

/** Least-squares slope of y over x: the trend, robust to the GC's saw-tooth. */
function slope (points: Array<[number, number]>): number {
  const usable = points.filter(([, y]) => Number.isFinite(y))
  const n = usable.length
  if (n < 2) return Number.NaN
  const mx = usable.reduce((s, [x]) => s + x, 0) / n
  const my = usable.reduce((s, [, y]) => s + y, 0) / n
  const sxy = usable.reduce((s, [x, y]) => s + (x - mx) * (y - my), 0)
  const sxx = usable.reduce((s, [x]) => s + (x - mx) ** 2, 0)
  return sxx === 0 ? 0 : sxy / sxx
}
const secondHalf = samples.filter((s) => s.minute >= durationMs / 60_000 / 2)
const heapTrendKiBPerMin = round(slope(secondHalf.map((s) => [s.minute, s.upHeapMiB])) * 1024, 0)
const rssTrendKiBPerMin = round(slope(secondHalf.map((s) => [s.minute, s.upRssMiB])) * 1024, 0)

printTable(samples.map((s) => ({ ...s })))
process.stdout.write('\n' + asciiPlot(samples) + '\n')
const verdict = {
  devices: Number(values.devices), minutes: round((Date.now() - startedAt) / 60_000, 1), simExitCode: simCode,
  sent: summary.sent, acked: summary.acked, failed: summary.failed, storedMessages: stored,
  seqGapsOnCleanDevices: gaps, devicesWithGaps: gapDevices.length,
  incidents: truth.length, detected: truth.length - missed.length, falseAlerts: falseAlerts.length, allAlerts: alerts.length,
  systemAlerts: systemAlerts.map((a) => `${a.policy} ${a.deviceId}: ${a.summary}`),
  heapTrendKiBPerMin, rssTrendKiBPerMin,
}
process.stdout.write('\n' + JSON.stringify(verdict, null, 2) + '\n')
for (const alert of falseAlerts.slice(0, 10)) process.stdout.write(`  false alert: ${alert.policy} ${alert.deviceId}: ${alert.summary}\n`)
for (const record of missed.slice(0, 10)) process.stdout.write(`  missed: ${record.policy} on ${record.deviceId}\n`)
mkdirSync(join(ROOT, 'docs', 'perf'), { recursive: true })
writeFileSync(join(ROOT, 'docs', 'perf', 'soak-memory.svg'), svgPlot(samples, verdict))
process.stdout.write(`results: ${saveResults('soak', { at: new Date().toISOString(), options: values, verdict, samples, falseAlerts, missed })}\n`)
if (!values.keep) rmSync(dataDir, { recursive: true, force: true })
process.exit(0)

/** Memory per minute as text: one row per sample, bars scaled to the largest value. */
function asciiPlot (rows: Sample[]): string {
  const max = Math.max(1, ...rows.flatMap((r) => [r.upRssMiB, r.upHeapMiB, r.simRssMiB].filter(Number.isFinite)))
  const bar = (v: number, ch: string) => ch.repeat(Number.isFinite(v) ? Math.round(40 * v / max) : 0)
  return ['minute  up RSS (#) / up heap (=) / sim RSS (-), MiB',
    ...rows.map((r) => `${String(r.minute).padStart(6)}  ${bar(r.upRssMiB, '#').padEnd(40)} ${r.upRssMiB}\n        ${bar(r.upHeapMiB, '=').padEnd(40)} ${r.upHeapMiB}\n        ${bar(r.simRssMiB, '-').padEnd(40)} ${r.simRssMiB}`),
  ].join('\n')
}

/** A small self-contained SVG line chart of the three memory series. */
function svgPlot (rows: Sample[], facts: typeof verdict): string {
  const w = 720
  const h = 320
  const pad = 48
  const maxX = Math.max(1, ...rows.map((r) => r.minute))
  const maxY = Math.max(1, ...rows.flatMap((r) => [r.upRssMiB, r.upHeapMiB, r.simRssMiB].filter(Number.isFinite))) * 1.1
  const x = (v: number) => pad + (w - 2 * pad) * v / maxX
  const y = (v: number) => h - pad - (h - 2 * pad) * v / maxY
  const line = (key: 'upRssMiB' | 'upHeapMiB' | 'simRssMiB', color: string) =>
    `<polyline fill="none" stroke="${color}" stroke-width="2" points="${rows.filter((r) => Number.isFinite(r[key])).map((r) => `${x(r.minute).toFixed(1)},${y(r[key]).toFixed(1)}`).join(' ')}"/>`
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => `<text x="${pad - 6}" y="${y(maxY * f) + 4}" text-anchor="end">${Math.round(maxY * f)}</text>`).join('')
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="${pad}" y="20" font-size="14">Soak: ${facts.devices} devices, ${facts.minutes} min — memory (MiB) per minute</text>
<line x1="${pad}" y1="${h - pad}" x2="${w - pad}" y2="${h - pad}" stroke="#888"/><line x1="${pad}" y1="${pad}" x2="${pad}" y2="${h - pad}" stroke="#888"/>
${ticks}<text x="${w / 2}" y="${h - 12}" text-anchor="middle">minutes</text><text x="${w - pad}" y="${h - pad + 16}" text-anchor="end">${maxX}</text>
${line('upRssMiB', '#1f77b4')}${line('upHeapMiB', '#2ca02c')}${line('simRssMiB', '#ff7f0e')}
<text x="${w - pad}" y="40" text-anchor="end" fill="#1f77b4">placeguard up RSS (trend ${facts.rssTrendKiBPerMin} KiB/min)</text>
<text x="${w - pad}" y="56" text-anchor="end" fill="#2ca02c">placeguard up heap used (trend ${facts.heapTrendKiBPerMin} KiB/min)</text>
<text x="${w - pad}" y="72" text-anchor="end" fill="#ff7f0e">simulator RSS</text>
</svg>
`
}
