/**
 * npm run bench:lorawan — devices behind a LoRaWAN network server (issue 16).
 *
 *   1. throughput: one prepared stream of network-server events (each
 *      device's join, then its uplinks, round robin), published QoS 1 by
 *      one mqtt.js client holding the integration certificate, into
 *      PlaceGuard's broker and into mosquitto in the same run, on the same
 *      certificates. A subscriber with the collector's certificate receives
 *      every event (from PlaceGuard re-addressed under
 *      `$SYS/placeguard/lorawan/<integration>/`, from mosquitto on the
 *      network's topics). Uplinks/s, broker CPU, and the ratio.
 *   2. latency to the store (PlaceGuard only): broker and collector
 *      processes writing to victoria-metrics; a probe device behind the
 *      integration sends 10 uplinks a second; publish → visible in the
 *      store, p50/p99.
 *   3. detection time per LoRaWAN policy: the pipeline in one process (as
 *      bench:detection), `sim --network` with lorawan-mix.yaml; time from
 *      each injected incident (the ground truth) to its alert, recall, and
 *      LoRaWAN alerts on clean devices.
 *
 * PlaceGuard's part needs the fleet PKI's integration certificates and
 * registry, the broker's integration rules, the collector's decoding and
 * the lorawan-* policies. With a PKI that cannot issue integrations yet,
 * only mosquitto's leg of 1 runs (the integration on a device certificate)
 * and the rest is reported as not run.
 *
 *   npm run bench:lorawan -- [--network chirpstack] [--devices 1000] [--per-device 50]
 *                            [--detect-devices 200] [--interval 2s] [--duration 120s]
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import mqtt, { type MqttClient } from 'mqtt'
import { buildLorawanFleet, DEFAULT_MIX, loadScenario, planInjections, provisionLorawan, provisionPlan, runLorawanSimulation, type TruthRecord } from '../agent-sim/index.ts'
import { loadConfig } from '../app/index.ts'
import { createCollectorService } from '../app/collector-service.ts'
import { PlaceGuardBroker } from '../broker/index.ts'
import { FleetPki } from '../pki/index.ts'
import type { Alert } from '../shared/alert-contract.ts'
import { parseDuration } from '../shared/duration.ts'
import { LORAWAN_NETWORKS, LORAWAN_UPLINKS_FILTER, type LorawanNetwork } from '../shared/lorawan.ts'
import { createLogger } from '../shared/logger.ts'
import { startVictoriaMetrics } from '../test/helpers/victoria-metrics.ts'
import { type BrokerProcess, freePort, startMosquitto, startPlaceGuard } from './lib/brokers.ts'
import { printTable, progressBar, round, saveResults } from './lib/report.ts'

const { values } = parseArgs({ options: {
  network: { type: 'string', default: 'chirpstack' },
  devices: { type: 'string', default: '1000' },
  'per-device': { type: 'string', default: '50' },
  'detect-devices': { type: 'string', default: '200' },
  interval: { type: 'string', default: '2s' },
  duration: { type: 'string', default: '120s' },
} })
if (!(LORAWAN_NETWORKS as readonly string[]).includes(values.network)) throw new Error(`--network: one of ${LORAWAN_NETWORKS.join(', ')}`)
const network = values.network as LorawanNetwork
const DEVICES = Number(values.devices)
const PER_DEVICE = Number(values['per-device'])
const TIMEOUT_MS = 180_000
const INTEGRATION = `bench-${network}`
const ROOT = join(import.meta.dirname, '..')
const SITES = ['riverside', 'northgate', 'harbour', 'old-town']

const dataDir = mkdtempSync(join(tmpdir(), 'placeguard-bench-lorawan-'))
const pki = new FleetPki(dataDir)
await pki.init()
const fleet = buildLorawanFleet({ network, devices: DEVICES, mix: { flood: 40, energy: 30, housing: 30 }, sites: SITES, seed: 1 })
const integration = { integrationId: INTEGRATION, network, site: SITES[0]! }
const devices = fleet.devices.map((d) => ({ deviceId: d.spec.deviceId, kind: d.spec.kind, site: d.spec.site, devEui: d.identity.devEui, integrationId: INTEGRATION }))
const provision = await provisionLorawan(pki, { integration, peers: [], devices })
pki.close()
const paths = pki.paths
const ca = readFileSync(paths.caCert)
const collectorCert = { cert: readFileSync(paths.collectorCert), key: readFileSync(paths.collectorKey) }

// One stream for both brokers: each device's join (OTAA), then its uplinks, round robin, as a network server interleaves them.
const stream: Array<{ topic: string, payload: string }> = []
const start = Date.now()
fleet.devices.forEach((device, i) => { if (device.activation === 'otaa') stream.push(device.join(start + i)) })
for (let n = 0; n < PER_DEVICE; n++) fleet.devices.forEach((device, i) => stream.push(device.uplink(start + 1_000 * n + i)))
const uplinks = stream.filter((event) => event.topic.endsWith('/up')).length

function connectClient (port: number, clientId: string, files: { cert: Buffer, key: Buffer }): Promise<MqttClient> {
  const client = mqtt.connect({ protocol: 'mqtts', host: '127.0.0.1', port, ca, ...files, clientId, reconnectPeriod: 0, clean: true, connectTimeout: 30_000 })
  return new Promise((resolve, reject) => {
    client.once('connect', () => resolve(client))
    client.once('error', reject)
  })
}

function until (count: () => number, target: number, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const started = Date.now()
    const timer = setInterval(() => {
      if (count() >= target) { clearInterval(timer); resolve() } else if (Date.now() - started > TIMEOUT_MS) {
        clearInterval(timer); reject(new Error(`${what}: ${count()} of ${target} after ${TIMEOUT_MS} ms`))
      }
    }, 5)
  })
}

async function throughput (broker: BrokerProcess): Promise<Record<string, number>> {
  const subscriber = await connectClient(broker.port, 'collector-bench', collectorCert)
  let received = 0
  subscriber.on('message', () => { received++ })
  await subscriber.subscribeAsync(broker.name === 'placeguard' ? [LORAWAN_UPLINKS_FILTER] : ['application/#', 'v3/#'], { qos: 1 })
  const publisher = await connectClient(broker.port, INTEGRATION, provision.credentials)
  const cpu0 = broker.cpuSeconds()
  const started = performance.now()
  let acked = 0
  for (const event of stream) publisher.publish(event.topic, event.payload, { qos: 1 }, (error) => { if (!error) acked++ })
  const bar = progressBar(`${broker.name} ${network} stream`, stream.length)
  const ticker = setInterval(() => bar.update(Math.min(acked, received)), 200)
  try {
    await until(() => Math.min(acked, received), stream.length, `${broker.name} integration stream`)
  } finally {
    clearInterval(ticker)
    bar.stop()
  }
  const seconds = (performance.now() - started) / 1000
  publisher.end(true)
  subscriber.end(true)
  return { events: stream.length, uplinks, seconds: round(seconds, 2), eventsPerSec: Math.round(stream.length / seconds), uplinksPerSec: Math.round(uplinks / seconds), brokerCpuS: round(broker.cpuSeconds() - cpu0, 2), brokerRssMiB: round(broker.rssKiB() / 1024, 1) }
}

/** The broker and collector as processes, into victoria-metrics; a probe device behind the integration at 10 uplinks/s. */
async function latencyToStore (): Promise<Record<string, number | null>> {
  const store = await startVictoriaMetrics()
  const port = await freePort()
  const broker = await startPlaceGuard(dataDir, port, { publishRatePerSec: 0, maxConnections: 50_000 })
  const url = `mqtts://127.0.0.1:${port}`
  const collector = spawn(process.execPath, [join(ROOT, 'bin', 'placeguard.js'), '--data-dir', dataDir, 'collector', '--broker', url], {
    env: { ...process.env, PLACEGUARD_INFLUX_URL: store.url, PLACEGUARD_INFLUX_TOKEN: 'bench', PLACEGUARD_INFLUX_ORG: 'bench', PLACEGUARD_INFLUX_BUCKET: 'bench', PLACEGUARD_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  try {
    await new Promise((resolve) => setTimeout(resolve, 3_000)) // silent at warn: give it its session
    const probe = fleet.devices.find((d) => d.spec.kind === 'housing')!
    const client = await connectClient(port, INTEGRATION, provision.credentials)
    if (probe.activation === 'otaa') {
      const join = probe.join(Date.now())
      client.publish(join.topic, join.payload, { qos: 1 })
    }
    const sentAt = new Set<number>()
    const latencies: number[] = []
    const publisher = setInterval(() => {
      const at = Date.now()
      sentAt.add(at)
      const event = probe.uplink(at)
      client.publish(event.topic, event.payload, { qos: 1 })
    }, 100)
    let polling = false
    const poller = setInterval(() => {
      if (polling) return
      polling = true
      // The collector stores an uplink at the network server's receive time (PRODUCT.md): the publish time here.
      store.exportSeries(`{__name__="housing_seq",device="${probe.spec.deviceId}"}`).then((series) => {
        const now = Date.now()
        for (const timestamp of series[0]?.timestamps ?? []) if (sentAt.delete(timestamp)) latencies.push(now - timestamp)
      }).catch(() => {}).finally(() => { polling = false })
    }, 100)
    await new Promise((resolve) => setTimeout(resolve, 20_000))
    clearInterval(publisher)
    await new Promise((resolve) => setTimeout(resolve, 3_000))
    clearInterval(poller)
    client.end(true)
    const sorted = [...latencies].sort((a, b) => a - b)
    const at = (p: number) => sorted.length === 0 ? null : sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!
    return { samples: latencies.length, notStored: sentAt.size, storedP50Ms: at(0.5), storedP99Ms: at(0.99) }
  } finally {
    await stopChild(collector)
    await broker.stop()
    await store.stop()
    rmSync(join(dataDir, 'spool.db'), { force: true })
  }
}

async function stopChild (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
  await exited
  clearTimeout(timer)
}

/** bench:detection's pipeline in one process, with a LoRaWAN fleet and its incidents. */
async function detectionTimes (): Promise<Array<Record<string, string | number>>> {
  // A data directory of its own: the throughput fleet's registrations would make the scenario's unknown devices known.
  const dataDir = mkdtempSync(join(tmpdir(), 'placeguard-bench-lorawan-detect-'))
  const detectPki = new FleetPki(dataDir)
  await detectPki.init()
  detectPki.close()
  const paths = detectPki.paths
  try {
    return await detectIn(dataDir, paths)
  } finally {
    rmSync(dataDir, { recursive: true, force: true })
  }
}

async function detectIn (dataDir: string, paths: FleetPki['paths']): Promise<Array<Record<string, string | number>>> {
  const logger = createLogger({ level: 'silent' })
  const config = loadConfig({ env: {}, flags: { dataDir, mqttHost: '127.0.0.1', mqttPort: 0 } })
  const broker = new PlaceGuardBroker({
    tls: { caCert: paths.caCert, serverCert: paths.serverCert, serverKey: paths.serverKey, crl: paths.crl },
    host: '127.0.0.1', port: 0, logger,
  })
  const { port } = await broker.listen()
  const brokerUrl = `mqtts://127.0.0.1:${port}`
  // Registered before the collector starts: it reads the registry at start and then once a minute.
  const scenario = loadScenario(join(ROOT, 'agent-sim', 'scenarios', 'lorawan-mix.yaml'))
  const detectDevices = Number(values['detect-devices'])
  const detectFleet = buildLorawanFleet({ network, devices: detectDevices, mix: DEFAULT_MIX, sites: SITES, seed: 2 })
  const own = { integrationId: INTEGRATION, network, site: SITES[0]! }
  const registering = new FleetPki(dataDir)
  await provisionLorawan(registering, provisionPlan(detectFleet, planInjections(scenario, detectFleet.devices.map((d) => d.spec), 2), own, { ...own, integrationId: `${INTEGRATION}-peer` }))
  registering.close()
  const service = createCollectorService(config, brokerUrl, logger)
  await service.start()
  const truthFile = join(dataDir, 'truth.jsonl')
  let alerts: Alert[] = []
  try {
    await runLorawanSimulation({
      dataDir, brokerUrl, network, integrationId: INTEGRATION, devices: detectDevices, mix: DEFAULT_MIX, sites: SITES, seed: 2,
      intervalMs: parseDuration('--interval', values.interval), durationMs: parseDuration('--duration', values.duration),
      scenario, truthFile,
      onPhase: (phase) => { if (phase === 'stop') void Promise.resolve(service.detection.alerts.list()).then((listed) => { alerts = listed }) },
    })
  } finally {
    await service.stop()
    await broker.close()
  }
  const truth = readFileSync(truthFile, 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line) as TruthRecord)
  // An unknown device has no id at PlaceGuard: its alert names the DevEUI, as the id or in the evidence.
  const names = (alert: Alert): string[] => [alert.deviceId, ...Object.values(alert.evidence).map(String)]
  const matches = (alert: Alert, record: TruthRecord) => alert.policy === record.policy && names(alert).some((n) => n === record.deviceId || n === record.devEui)
  const lorawanAlerts = alerts.filter((a) => a.policy.startsWith('lorawan-'))
  const falseAlerts = lorawanAlerts.filter((a) => !truth.some((t) => matches(a, t)))
  const rows: Array<Record<string, string | number>> = [...new Set(truth.map((t) => t.policy))].sort().map((policy) => {
    const records = truth.filter((t) => t.policy === policy)
    const ttd = records.flatMap((record) => {
      const alert = alerts.filter((a) => matches(a, record)).sort((a, b) => a.detectedAt.localeCompare(b.detectedAt))[0]
      return alert ? [Math.max(0, Date.parse(alert.detectedAt) - Date.parse(record.startedAt))] : []
    }).sort((a, b) => a - b)
    return {
      policy, injected: records.length, detected: ttd.length,
      ttdMedianS: ttd.length === 0 ? '-' : ttd[Math.floor(ttd.length / 2)]! / 1000, ttdMaxS: ttd.length === 0 ? '-' : ttd.at(-1)! / 1000,
    }
  })
  rows.push({ policy: 'lorawan-* alerts on clean devices', injected: 0, detected: falseAlerts.length, ttdMedianS: '-', ttdMaxS: '-' })
  return rows
}

const results: Record<string, unknown> = { network, devices: DEVICES, perDevice: PER_DEVICE }
try {
  const legs: Record<string, Record<string, number>> = {}
  for (const name of ['placeguard', 'mosquitto'] as const) {
    const port = await freePort()
    const broker = name === 'mosquitto'
      ? await startMosquitto(paths, dataDir, port)
      // The per-client publish budget off: this measures the broker's path, not the integration's budget.
      : await startPlaceGuard(dataDir, port, { publishRatePerSec: 0, maxConnections: 50_000 })
    try {
      legs[name] = await throughput(broker)
    } finally {
      await broker.stop()
    }
  }
  results.throughput = legs
  results.latency = await latencyToStore()
  results.detection = await detectionTimes()
} finally {
  rmSync(dataDir, { recursive: true, force: true })
}

const legs = results.throughput as Record<string, Record<string, number>>
const mq = legs.mosquitto!
const pg = legs.placeguard
printTable([
  { measure: `${network} integration, ${stream.length} events (${uplinks} uplinks), QoS 1, uplinks/s`, placeguard: pg?.uplinksPerSec ?? 'not run', mosquitto: mq.uplinksPerSec!, ratio: pg ? round(pg.uplinksPerSec! / mq.uplinksPerSec!, 2) : '-' },
  { measure: '… broker CPU s', placeguard: pg?.brokerCpuS ?? 'not run', mosquitto: mq.brokerCpuS!, ratio: pg ? round(pg.brokerCpuS! / mq.brokerCpuS!, 2) : '-' },
  { measure: '… broker RSS MiB', placeguard: pg?.brokerRssMiB ?? 'not run', mosquitto: mq.brokerRssMiB!, ratio: pg ? round(pg.brokerRssMiB! / mq.brokerRssMiB!, 2) : '-' },
])
if (results.latency) {
  const latency = results.latency as Record<string, number | null>
  process.stdout.write(`\npublish → store (victoria-metrics): p50 ${latency.storedP50Ms} ms, p99 ${latency.storedP99Ms} ms over ${latency.samples} uplinks (${latency.notStored} not seen)\n\n`)
  printTable(results.detection as Array<Record<string, string | number>>)
}
process.stdout.write(`results: ${saveResults('lorawan', { at: new Date().toISOString(), ...results })}\n`)
process.exit(0)
