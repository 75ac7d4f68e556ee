/**
 * npm run bench:ingest — end to end: simulator → PlaceGuard broker →
 * collector → victoria-metrics (InfluxDB line protocol), each its own
 * process on this machine, against the same simulator load through
 * mosquitto with a bare mqtt.js subscriber as the reference.
 *
 * For each offered load it reports the sustained acknowledged msg/s, loss
 * (messages the broker acknowledged that are not in the store once the
 * spool drained), and publish→stored latency p50/p99, measured by a probe
 * device publishing 10 messages a second whose points are polled for in
 * the store.
 *
 *   npm run bench:ingest -- [--devices 1000,2000,3000] [--interval 200ms] [--duration 30s]
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import mqtt from 'mqtt'
import { runSimulation } from '../agent-sim/index.ts'
import { FleetPki } from '../pki/index.ts'
import { parseDuration } from '../shared/duration.ts'
import { startVictoriaMetrics, type RunningVictoriaMetrics } from '../test/helpers/victoria-metrics.ts'
import { type BrokerProcess, freePort, startMosquitto, startPlaceGuard } from './lib/brokers.ts'
import { printTable, round, saveResults } from './lib/report.ts'

const { values } = parseArgs({ options: {
  devices: { type: 'string', default: '1000,2000,3000' },
  interval: { type: 'string', default: '200ms' },
  duration: { type: 'string', default: '30s' },
} })
const fleetSizes = values.devices.split(',').map(Number)
const intervalMs = parseDuration('--interval', values.interval)
const durationMs = parseDuration('--duration', values.duration)
const ROOT = join(import.meta.dirname, '..')

const dataDir = mkdtempSync(join(tmpdir(), 'placeguard-bench-ingest-'))
const pki = new FleetPki(dataDir)
await pki.init()
await pki.issue({ deviceId: 'probe-1', kind: 'housing', site: 'bench' })
pki.close()
const ca = readFileSync(pki.paths.caCert)

function startCollector (store: RunningVictoriaMetrics, brokerUrl: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, [join(ROOT, 'bin', 'placeguard.js'), '--data-dir', dataDir, 'collector', '--broker', brokerUrl], {
    env: { ...process.env, PLACEGUARD_INFLUX_URL: store.url, PLACEGUARD_INFLUX_TOKEN: 'bench', PLACEGUARD_INFLUX_ORG: 'bench', PLACEGUARD_INFLUX_BUCKET: 'bench', PLACEGUARD_LOG_LEVEL: 'warn' },
    // Nobody reads its log here: a pipe left undrained fills up, and a bench must not depend on the collector coping with that.
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('collector did not start')), 20_000)
    // With logLevel warn the collector prints nothing on success: wait for its session at the broker instead.
    setTimeout(() => { clearTimeout(timer); resolve(child) }, 3_000)
  })
}

/** Publishes 10 housing readings a second as `probe-1` and times each from publish to visible in the store. */
function startProbe (brokerUrl: string, store: RunningVictoriaMetrics | undefined): { stop: () => Promise<number[]> } {
  const client = mqtt.connect(brokerUrl, {
    ca, cert: readFileSync(join(pki.paths.devicesDir, 'probe-1.crt')), key: readFileSync(join(pki.paths.devicesDir, 'probe-1.key')), clientId: 'probe-1', reconnectPeriod: 1000,
  })
  const sentAt = new Map<number, number>()
  const latencies: number[] = []
  let seq = 0
  const publisher = setInterval(() => {
    const ts = Date.now()
    sentAt.set(ts, ts)
    client.publish('places/bench/housing/probe-1/telemetry', JSON.stringify({ ts, seq: seq++, fw: '1.0.0', temp_c: 20, humidity_pct: 50, co2_ppm: 500 }), { qos: 1 })
  }, 100)
  let polling = false
  const poller = setInterval(() => {
    if (!store || polling) return
    polling = true
    store.exportSeries('{__name__="housing_seq",device="probe-1"}').then((series) => {
      const now = Date.now()
      for (const timestamp of series[0]?.timestamps ?? []) {
        if (!sentAt.has(timestamp)) continue
        latencies.push(now - sentAt.get(timestamp)!)
        sentAt.delete(timestamp)
      }
    }).catch(() => {}).finally(() => { polling = false })
  }, 100)
  return {
    stop: async () => {
      clearInterval(publisher)
      await new Promise((resolve) => setTimeout(resolve, 3_000))
      clearInterval(poller)
      client.end(true)
      return latencies
    },
  }
}

/** SIGTERM, then SIGKILL if it has not exited within 15 s: a stuck collector fails its run, it does not hang the bench. */
async function stopChild (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGTERM')
  const timer = setTimeout(() => {
    process.stderr.write('collector did not stop within 15 s of SIGTERM; killing it\n')
    child.kill('SIGKILL')
  }, 15_000)
  await exited
  clearTimeout(timer)
}

function percentile (values: number[], p: number): number | null {
  if (values.length === 0) return null
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!
}

async function storedSince (store: RunningVictoriaMetrics, sinceMs: number): Promise<number> {
  const messages = new Set<string>()
  for (const series of await store.exportSeries('{__name__=~"(flood|energy|housing)_seq"}')) {
    if (series.metric.device === 'probe-1') continue
    series.timestamps.forEach((t, i) => { if (t >= sinceMs) messages.add(`${series.metric.device} ${t} ${series.values[i]}`) })
  }
  return messages.size
}

async function runPlaceGuard (devices: number): Promise<Record<string, number | string | null>> {
  const store = await startVictoriaMetrics()
  const port = await freePort()
  const broker = await startPlaceGuard(dataDir, port, { publishRatePerSec: 0, maxConnections: 50_000 })
  const url = `mqtts://127.0.0.1:${port}`
  const collector = await startCollector(store, url)
  try {
    const since = Date.now()
    const probe = startProbe(url, store)
    const summary = await runSimulation({ dataDir, brokerUrl: url, devices, intervalMs, durationMs, seed: 1 })
    const latencies = await probe.stop()
    let stored = 0
    const drainStarted = Date.now()
    while (Date.now() - drainStarted < 120_000) {
      stored = await storedSince(store, since)
      if (stored >= summary.acked) break
      await new Promise((resolve) => setTimeout(resolve, 1_000))
    }
    return {
      devices, offeredPerSec: Math.round(devices * 1000 / intervalMs), ackedPerSec: summary.ackedPerSec, acked: summary.acked,
      // A message published near the end may be stored while its PUBACK is still on the way (the
      // simulator counts it failed), so the store can hold more than was acknowledged; loss is the reverse.
      stored, lost: Math.max(0, summary.acked - stored), storedBeyondAcked: Math.max(0, stored - summary.acked), failed: summary.failed, drainS: round((Date.now() - drainStarted) / 1000, 1),
      storedP50Ms: percentile(latencies, 50), storedP99Ms: percentile(latencies, 99), probeSamples: latencies.length,
      publishAckP99Ms: summary.publishAckP99Ms, brokerCpuS: round(broker.cpuSeconds(), 1),
    }
  } finally {
    await stopChild(collector)
    await broker.stop()
    await store.stop()
    rmSync(join(dataDir, 'spool.db'), { force: true })
  }
}

async function runMosquitto (devices: number): Promise<Record<string, number>> {
  const port = await freePort()
  const broker: BrokerProcess = await startMosquitto(pki.paths, dataDir, port)
  const url = `mqtts://127.0.0.1:${port}`
  const subscriber = mqtt.connect(url, { ca, cert: readFileSync(pki.paths.collectorCert), key: readFileSync(pki.paths.collectorKey), clientId: 'bare-subscriber', reconnectPeriod: 0 })
  let received = 0
  subscriber.on('message', () => { received++ })
  await new Promise<void>((resolve) => subscriber.once('connect', () => resolve()))
  await subscriber.subscribeAsync('places/#', { qos: 1 })
  try {
    const summary = await runSimulation({ dataDir, brokerUrl: url, devices, intervalMs, durationMs, seed: 1 })
    await new Promise((resolve) => setTimeout(resolve, 2_000))
    return { devices, ackedPerSec: summary.ackedPerSec, acked: summary.acked, received, brokerCpuS: round(broker.cpuSeconds(), 1) }
  } finally {
    subscriber.end(true)
    await broker.stop()
  }
}

const rows: Array<Record<string, string | number>> = []
const results: unknown[] = []
try {
  for (const devices of fleetSizes) {
    process.stderr.write(`${devices} devices at ${intervalMs} ms: PlaceGuard…\n`)
    const pg = await runPlaceGuard(devices)
    process.stderr.write(`${JSON.stringify(pg)}\n${devices} devices: mosquitto + bare subscriber…\n`)
    const mq = await runMosquitto(devices)
    process.stderr.write(`${JSON.stringify(mq)}\n`)
    results.push({ placeguard: pg, mosquitto: mq })
    rows.push({
      devices, offeredPerSec: pg.offeredPerSec as number,
      placeguardPerSec: pg.ackedPerSec as number, lost: pg.lost as number, storedP50Ms: pg.storedP50Ms ?? '-', storedP99Ms: pg.storedP99Ms ?? '-',
      mosquittoPerSec: mq.ackedPerSec!, ratio: round((pg.ackedPerSec as number) / mq.ackedPerSec!, 2),
    })
  }
} finally {
  rmSync(dataDir, { recursive: true, force: true })
}
printTable(rows)
process.stdout.write(`results: ${saveResults('ingest', { at: new Date().toISOString(), intervalMs, durationMs, results })}\n`)
