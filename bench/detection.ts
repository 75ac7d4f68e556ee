/**
 * npm run bench:detection — detections scored against ground truth.
 *
 * Runs the whole pipeline in one process (broker, collector with the
 * shipped policies into the embedded store, simulator), injects a scenario
 * into a fleet, and scores the alerts against the simulator's truth file:
 * recall per policy, false alerts on clean devices, and time-to-detect
 * (alert detectedAt − incident startedAt), median and p95, against each
 * policy's budget: its window + 5 s (issue 5's target).
 *
 *   npm run bench:detection -- [--devices 1000] [--interval 2s] [--duration 120s] [--scenario agent-sim/scenarios/attack-mix.yaml]
 *   npm run bench:detection -- --scenario agent-sim/scenarios/clean.yaml --interval 10s --duration 10m
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { loadScenario, runSimulation, type TruthRecord } from '../agent-sim/index.ts'
import { PlaceGuardBroker } from '../broker/index.ts'
import { SHIPPED_POLICIES_DIR } from '../detection/detection.ts'
import { createCollectorService } from '../app/collector-service.ts'
import { FleetPki } from '../pki/index.ts'
import { type Alert } from '../shared/alert-contract.ts'
import { loadPolicyDirectory, type Policy } from '../policies/index.ts'
import { loadConfig } from '../app/index.ts'
import { parseDuration } from '../shared/duration.ts'
import { createLogger } from '../shared/logger.ts'
import { printTable, saveResults } from './lib/report.ts'

const { values } = parseArgs({ options: {
  devices: { type: 'string', default: '1000' },
  interval: { type: 'string', default: '2s' },
  duration: { type: 'string', default: '120s' },
  scenario: { type: 'string', default: join(import.meta.dirname, '..', 'agent-sim', 'scenarios', 'attack-mix.yaml') },
} })
const dataDir = mkdtempSync(join(tmpdir(), 'placeguard-bench-detection-'))
const logger = createLogger({ level: 'silent' })
const pki = new FleetPki(dataDir)
await pki.init()
pki.close()
const config = loadConfig({ env: {}, flags: { dataDir, mqttHost: '127.0.0.1', mqttPort: 0 } })
const broker = new PlaceGuardBroker({
  tls: { caCert: pki.paths.caCert, serverCert: pki.paths.serverCert, serverKey: pki.paths.serverKey, crl: pki.paths.crl },
  host: '127.0.0.1', port: 0, logger,
})
const { port } = await broker.listen()
const brokerUrl = `mqtts://127.0.0.1:${port}`
const service = createCollectorService(config, brokerUrl, logger)
await service.start()
const truthFile = join(dataDir, 'truth.jsonl')
const started = Date.now()
// Alerts are scored as they stood when the fleet stopped: once it stops, every device is silent.
let alerts: Alert[] = []
process.stderr.write(`simulating ${values.devices} devices for ${values.duration} with ${values.scenario}…\n`)
const summary = await runSimulation({
  dataDir, brokerUrl, devices: Number(values.devices), intervalMs: parseDuration('--interval', values.interval),
  durationMs: parseDuration('--duration', values.duration), scenario: loadScenario(values.scenario), truthFile, seed: 1,
  onPhase: (phase) => {
    if (phase === 'run') service.detection.checkCertificates()
    if (phase === 'stop') void Promise.resolve(service.detection.alerts.list()).then((listed) => { alerts = listed })
  },
})
await service.stop()
await broker.close()

const truth = readFileSync(truthFile, 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line) as TruthRecord)
const injectedDevices = new Set(truth.map((t) => t.deviceId))
const alertFor = (record: TruthRecord): Alert | undefined => alerts
  .filter((a) => a.policy === record.policy && (a.deviceId === record.deviceId || claimsOf(a).includes(record.deviceId)))
  .sort((a, b) => a.detectedAt.localeCompare(b.detectedAt))[0]
const byPolicy = new Map<string, { injected: number, detected: number, ttd: number[] }>()
for (const record of truth) {
  const row = byPolicy.get(record.policy) ?? { injected: 0, detected: 0, ttd: [] }
  const alert = alertFor(record)
  row.injected++
  if (alert) {
    row.detected++
    row.ttd.push(Math.max(0, Date.parse(alert.detectedAt) - Date.parse(record.startedAt)))
  }
  byPolicy.set(record.policy, row)
}
/** An unverified claim is alerted by source address, the ids it claimed in the evidence. */
function claimsOf (alert: Alert): string[] {
  return typeof alert.evidence.claimedIds === 'string' ? JSON.parse(alert.evidence.claimedIds) as string[] : []
}
const deviceOf = (alert: Alert) => claimsOf(alert)[0] ?? alert.deviceId
const falseAlerts = alerts.filter((a) => !injectedDevices.has(deviceOf(a)))
const sideAlerts = alerts.filter((a) => injectedDevices.has(deviceOf(a)) && !truth.some((t) => t.deviceId === deviceOf(a) && t.policy === a.policy))
const intervalMs = parseDuration('--interval', values.interval)
const shipped = new Map(loadPolicyDirectory(SHIPPED_POLICIES_DIR).map(({ policy }) => [policy.id, policy]))
const TICK_MS = 5_000
const SLACK_MS = 5_000
/**
 * The time a policy may take by design, + 5 s: its window for the
 * event-counting policies, the silence or rate window plus the engine's
 * tick for the time-driven ones, and the next message (intervals are
 * jittered ±20 %) for those judged per message.
 */
function budgetMs (policy: Policy | undefined): number {
  if (!policy) return intervalMs * 1.2 + SLACK_MS
  switch (policy.id) {
    case 'device-silent': return policy.params.missedIntervals * intervalMs * 1.2 + TICK_MS + SLACK_MS
    case 'rate-burst': return 10_000 + TICK_MS + SLACK_MS
    case 'cert-rejected': case 'cert-revoked-attempt': case 'acl-violation': case 'identity-clone': case 'payload-invalid': case 'connection-flapping':
      return policy.params.window + SLACK_MS
    default: return intervalMs * 1.2 + SLACK_MS
  }
}
const quantile = (values: number[], q: number) => values.length === 0 ? '-' : [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(q * values.length))]! / 1000
const rows = [...byPolicy].sort(([a], [b]) => a.localeCompare(b)).map(([policy, row]) => {
  const budget = budgetMs(shipped.get(policy as Policy['id']))
  return {
    policy, injected: row.injected, detected: row.detected, recall: `${Math.round(100 * row.detected / row.injected)} %`,
    ttdMedianS: quantile(row.ttd, 0.5), ttdP95S: quantile(row.ttd, 0.95), ttdMaxS: quantile(row.ttd, 1),
    budgetS: budget / 1000, withinBudget: row.ttd.every((ms) => ms <= budget) ? 'yes' : 'NO',
  }
})
if (rows.length > 0) printTable(rows)
const detected = rows.reduce((n, r) => n + r.detected, 0)
const injected = rows.reduce((n, r) => n + r.injected, 0)
const overBudget = rows.filter((r) => r.withinBudget !== 'yes').map((r) => r.policy)
process.stdout.write(`\n${summary.devices} devices, ${Math.round((Date.now() - started) / 1000)} s, ${summary.acked} messages; incidents detected ${detected}/${injected}; ` +
  `false alerts on clean devices: ${falseAlerts.length}; other alerts on injected devices: ${sideAlerts.length}; ` +
  `time-to-detect over budget: ${overBudget.length === 0 ? 'none' : overBudget.join(', ')}\n`)
for (const alert of [...falseAlerts, ...sideAlerts].slice(0, 10)) process.stdout.write(`  ${alert.policy} ${alert.deviceId}: ${alert.summary}\n`)
process.stdout.write(`results: ${saveResults('detection', { at: new Date().toISOString(), options: values, summary, rows, falseAlerts, sideAlerts })}\n`)
rmSync(dataDir, { recursive: true, force: true })
process.exit(0)
