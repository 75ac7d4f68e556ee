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
 * The machine is shared, so rates alone say little: each component's CPU
 * (user + system, from /proc/<pid>/stat; the simulator is this process)
 * is read from the start of the publishing phase until the store holds
 * every acknowledged message, and reported as CPU µs per acknowledged
 * message. The e2e ceiling is the highest offered load that ran with zero
 * loss, at least 95 % of it acknowledged, publish→stored p99 within 2 s,
 * and the store caught up within 2 s of the last publish. When none of the
 * loads asked for keeps up, smaller fleets are tried (half the smallest,
 * at most three times, not below 50 devices), so that a slow machine
 * still reports a ceiling.
 *
 *   npm run bench:ingest -- [--devices 1000,2000,3000] [--interval 200ms] [--duration 30s]
 *     [--only placeguard] [--profile-collector DIR]
 *
 * `--profile-collector DIR` runs the collector under `--cpu-prof`, writing
 * its .cpuprofile into DIR (scripts/flamegraph.ts draws it).
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import mqtt from 'mqtt'
import { loopbackAddress, runSimulation } from '../agent-sim/index.ts'
import { FleetPki } from '../pki/index.ts'
import { parseDuration } from '../shared/duration.ts'
import { startVictoriaMetrics, type RunningVictoriaMetrics } from '../test/helpers/victoria-metrics.ts'
import { type BrokerProcess, freePort, startMosquitto, startPlaceGuard } from './lib/brokers.ts'
import { printTable, round, saveResults } from './lib/report.ts'

const { values } = parseArgs({ options: {
  devices: { type: 'string', default: '1000,2000,3000' },
  interval: { type: 'string', default: '200ms' },
  duration: { type: 'string', default: '30s' },
  only: { type: 'string' },
  'profile-collector': { type: 'string' },
} })
if (values.only !== undefined && values.only !== 'placeguard') throw new Error(`--only takes placeguard, not ${values.only}`)
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
  const profile = values['profile-collector'] ? ['--cpu-prof', '--cpu-prof-dir', values['profile-collector']] : []
  const child = spawn(process.execPath, [...profile, join(ROOT, 'bin', 'placeguard.js'), '--data-dir', dataDir, 'collector', '--broker', brokerUrl], {
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

/** User + system CPU seconds a process has used so far (clock ticks are 1/100 s on Linux). */
function cpuSecondsOf (pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100
}

/** The victoria-metrics this process started: the test helper keeps its child to itself, /proc does not. */
function victoriaMetricsPid (): number {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      const [comm, rest] = [stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')), stat.slice(stat.lastIndexOf(')') + 2).split(' ')]
      if (comm.startsWith('victoria') && Number(rest[1]) === process.pid) return Number(entry)
    } catch {
      // gone meanwhile
    }
  }
  throw new Error('victoria-metrics process not found among this process\' children')
}

/** CPU seconds so far of each component; the simulator runs in this process. */
function cpuOf (pids: { broker: number, collector: number, store: number }): Record<'broker' | 'collector' | 'store' | 'simulator', number> {
  const self = process.cpuUsage()
  return { broker: cpuSecondsOf(pids.broker), collector: cpuSecondsOf(pids.collector), store: cpuSecondsOf(pids.store), simulator: (self.user + self.system) / 1e6 }
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

type PlaceGuardRun = Record<string, number | string | boolean | null | Record<string, number | null>> & { offeredPerSec: number, ackedPerSec: number, lost: number, keepsUp: boolean, cpuUsPerMsg: Record<string, number | null> }

async function runPlaceGuard (devices: number): Promise<PlaceGuardRun> {
  const offered = Math.round(devices * 1000 / intervalMs)
  const store = await startVictoriaMetrics()
  const port = await freePort()
  const broker = await startPlaceGuard(dataDir, port, { publishRatePerSec: 0, maxConnections: 50_000 })
  const url = `mqtts://127.0.0.1:${port}`
  const collector = await startCollector(store, url)
  const pids = { broker: broker.pid, collector: collector.pid!, store: victoriaMetricsPid() }
  try {
    const since = Date.now()
    const probe = startProbe(url, store)
    // CPU is counted from the publishing phase on: provisioning and the fleet's TLS handshakes are not ingest.
    let cpuAtRun = cpuOf(pids)
    let cpuAtStop = cpuAtRun
    const summary = await runSimulation({
      // Each device from its own address, as a fleet: from one, the broker's per-address limits refuse most of it at first.
      dataDir, brokerUrl: url, devices, intervalMs, durationMs, seed: 1, localAddress: loopbackAddress,
      onPhase: (phase) => {
        if (phase === 'run') cpuAtRun = cpuOf(pids)
        if (phase === 'stop') cpuAtStop = cpuOf(pids)
      },
    })
    const latencies = await probe.stop()
    let stored = 0
    let cpuAtStored = cpuOf(pids)
    const drainStarted = Date.now()
    while (Date.now() - drainStarted < 120_000) {
      // Read before each check, so the export that finds everything stored is not counted as the store's ingest.
      cpuAtStored = cpuOf(pids)
      stored = await storedSince(store, since)
      if (stored >= summary.acked) break
      await new Promise((resolve) => setTimeout(resolve, 1_000))
    }
    const perMessage = (seconds: number): number | null => summary.acked > 0 ? round(seconds * 1e6 / summary.acked, 1) : null
    const cpuUsPerMsg = {
      broker: perMessage(cpuAtStored.broker - cpuAtRun.broker),
      collector: perMessage(cpuAtStored.collector - cpuAtRun.collector),
      store: perMessage(cpuAtStored.store - cpuAtRun.store),
      // The simulator's work ends with its run; the bench's own store polling after it is not the simulator's.
      simulator: perMessage(cpuAtStop.simulator - cpuAtRun.simulator),
    }
    const drainS = round((Date.now() - drainStarted) / 1000, 1)
    return {
      devices, connectErrors: summary.connectErrors, offeredPerSec: offered, ackedPerSec: summary.ackedPerSec, acked: summary.acked,
      // A message published near the end may be stored while its PUBACK is still on the way (the
      // simulator counts it failed), so the store can hold more than was acknowledged; loss is the reverse.
      stored, lost: Math.max(0, summary.acked - stored), storedBeyondAcked: Math.max(0, stored - summary.acked), failed: summary.failed, drainS,
      storedP50Ms: percentile(latencies, 50), storedP99Ms: percentile(latencies, 99), probeSamples: latencies.length,
      publishAckP99Ms: summary.publishAckP99Ms, brokerCpuS: round(broker.cpuSeconds(), 1),
      cpuUsPerMsg,
      // Zero loss, the offered load (nearly) all acknowledged, the probe's readings stored within 2 s (p99) all along,
      // and the store caught up within 5 s of the last publish (the probe's stop waits 3 s of that). A pipeline that
      // falls behind during the run and catches up at the end does not keep up.
      keepsUp: summary.acked - stored <= 0 && summary.ackedPerSec >= 0.95 * offered && drainS <= 2 && (percentile(latencies, 99) ?? Infinity) <= 2_000,
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
    const summary = await runSimulation({ dataDir, brokerUrl: url, devices, intervalMs, durationMs, seed: 1, localAddress: loopbackAddress })
    await new Promise((resolve) => setTimeout(resolve, 2_000))
    return { devices, ackedPerSec: summary.ackedPerSec, acked: summary.acked, received, brokerCpuS: round(broker.cpuSeconds(), 1) }
  } finally {
    subscriber.end(true)
    await broker.stop()
  }
}

/** When no load asked for keeps up, smaller fleets are tried, each half the last, down to this many devices and at most this many times. */
const MIN_SEARCH_DEVICES = 50
const MAX_SEARCH_STEPS = 3

const rows: Array<Record<string, string | number>> = []
const results: Array<{ placeguard: PlaceGuardRun, mosquitto?: Record<string, number> }> = []
try {
  const sizes = [...fleetSizes]
  for (let i = 0; i < sizes.length; i++) {
    const devices = sizes[i]!
    process.stderr.write(`${devices} devices at ${intervalMs} ms: PlaceGuard…\n`)
    const pg = await runPlaceGuard(devices)
    process.stderr.write(`${JSON.stringify(pg)}\n`)
    let mq: Record<string, number> | undefined
    if (values.only === undefined) {
      process.stderr.write(`${devices} devices: mosquitto + bare subscriber…\n`)
      mq = await runMosquitto(devices)
      process.stderr.write(`${JSON.stringify(mq)}\n`)
    }
    results.push({ placeguard: pg, ...(mq ? { mosquitto: mq } : {}) })
    const cpu = pg.cpuUsPerMsg
    rows.push({
      devices, offeredPerSec: pg.offeredPerSec,
      placeguardPerSec: pg.ackedPerSec, lost: pg.lost, storedP50Ms: pg.storedP50Ms as number ?? '-', storedP99Ms: pg.storedP99Ms as number ?? '-', keepsUp: pg.keepsUp ? 'yes' : 'no',
      'µs/msg broker': cpu.broker ?? '-', collector: cpu.collector ?? '-', store: cpu.store ?? '-', simulator: cpu.simulator ?? '-',
      ...(mq ? { mosquittoPerSec: mq.ackedPerSec!, ratio: round(pg.ackedPerSec / mq.ackedPerSec!, 2) } : {}),
    })
    // None of the loads asked for kept up: halve the smallest, so that the ceiling is measured, not "below".
    const smallest = Math.min(...sizes)
    if (i === sizes.length - 1 && !results.some((r) => r.placeguard.keepsUp) && smallest >= 2 * MIN_SEARCH_DEVICES && sizes.length < fleetSizes.length + MAX_SEARCH_STEPS) {
      sizes.push(Math.floor(smallest / 2))
    }
  }
} finally {
  rmSync(dataDir, { recursive: true, force: true })
}
// The highest offered load the whole pipeline kept up with; null when none of the loads tried did.
const ceilingPerSec = results.filter((r) => r.placeguard.keepsUp).reduce<number | null>((best, r) => Math.max(best ?? 0, r.placeguard.offeredPerSec), null)
printTable(rows)
process.stdout.write(`e2e ceiling (zero loss, stored keeping up): ${ceilingPerSec === null ? `below ${Math.min(...results.map((r) => r.placeguard.offeredPerSec))}` : ceilingPerSec} msg/s offered\n`)
process.stdout.write(`results: ${saveResults('ingest', { at: new Date().toISOString(), intervalMs, durationMs, ceilingPerSec, results })}\n`)
