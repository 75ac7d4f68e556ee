/**
 * npm run bench:broker — PlaceGuard's broker against mosquitto, same run,
 * same certificates, same client (mqtt.js), mutual TLS on 127.0.0.1.
 *
 *   1. gateway stream: one device publishes N QoS 0 messages back to back,
 *      each in its own TLS record (the case that made stock aedes
 *      quadratic), then again pipelined; one collector subscriber receives
 *      them all.
 *   2. fleet: D devices connect (each its own certificate and TLS session),
 *      then each publishes M QoS 1 messages; the collector receives all.
 *   3. fleet to a persistent collector: the same, with the subscriber as
 *      the real collector connects (client id `collector`, clean=false), so
 *      every message passes through the broker's session store before its
 *      PUBACK: PlaceGuard with <data-dir>/broker.db (SQLite, synchronous
 *      FULL) and again with aedes' in-memory store, the cost of durability.
 *
 * Reported: msg/s, connects/s, broker CPU seconds, broker memory per idle
 * connection, and PlaceGuard ÷ mosquitto ratios. Absolute figures drift on
 * a shared machine; the ratios are the result.
 *
 * Memory per idle connection is the broker's RSS growth over the fleet's
 * connects divided by the devices; stream RSS is the peak while the stream
 * runs (sampled every 5 ms), and its growth over the RSS at the stream's start.
 *
 *   npm run bench:broker -- [--messages 200000] [--devices 1000] [--per-device 100]
 *     [--cases gateway,pipelined,fleet,persistent] [--brokers placeguard,placeguard-memory,mosquitto,node-tls-floor]
 *     (node-tls-floor: Node's TLS sockets with just enough MQTT to answer, lib/tls-floor-broker.ts)
 *     [--profile DIR]   (PlaceGuard's broker under --cpu-prof, one .cpuprofile per broker run in DIR;
 *                        scripts/flamegraph.ts draws it)
 *     [--node-flags=--max-semi-space-size=4,…]   (V8/Node flags for PlaceGuard's broker, to try settings)
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import mqtt, { type MqttClient } from 'mqtt'
import { FleetPki } from '../pki/index.ts'
import { type BrokerProcess, freePort, parseBrokerNames, placeGuardNodeArgs, startMosquitto, startPlaceGuard, startTlsFloor } from './lib/brokers.ts'
import { printTable, progressBar, round, saveResults } from './lib/report.ts'

const { values } = parseArgs({ options: {
  messages: { type: 'string', default: '200000' },
  devices: { type: 'string', default: '1000' },
  'per-device': { type: 'string', default: '100' },
  cases: { type: 'string', default: 'gateway,pipelined,fleet,persistent' },
  brokers: { type: 'string', default: 'placeguard,placeguard-memory,mosquitto' },
  profile: { type: 'string' },
  'node-flags': { type: 'string', default: '' },
} })
const CASES = new Set(values.cases.split(','))
const BROKERS = parseBrokerNames(values.brokers, ['placeguard', 'placeguard-memory', 'mosquitto', 'node-tls-floor'] as const)
const MESSAGES = Number(values.messages)
const DEVICES = Number(values.devices)
const PER_DEVICE = Number(values['per-device'])
const TIMEOUT_MS = 180_000

const dataDir = mkdtempSync(join(tmpdir(), 'placeguard-bench-broker-'))
const pki = new FleetPki(dataDir)
await pki.init()
await pki.issueMany([
  { deviceId: 'gateway-1', kind: 'energy', site: 'depot' },
  ...Array.from({ length: DEVICES }, (_, i) => ({ deviceId: `dev-${i}`, kind: 'housing', site: `block-${i % 10}` })),
])
const paths = pki.paths
const ca = readFileSync(paths.caCert)
const deviceCert = (id: string) => ({ cert: readFileSync(join(paths.devicesDir, `${id}.crt`)), key: readFileSync(join(paths.devicesDir, `${id}.key`)) })
const collectorCert = { cert: readFileSync(paths.collectorCert), key: readFileSync(paths.collectorKey) }

function connectClient (port: number, clientId: string, files: { cert: Buffer, key: Buffer }, clean = true): Promise<MqttClient> {
  const client = mqtt.connect({ protocol: 'mqtts', host: '127.0.0.1', port, ca, ...files, clientId, reconnectPeriod: 0, clean, connectTimeout: 30_000 })
  return new Promise((resolve, reject) => {
    client.once('connect', () => resolve(client))
    client.once('error', reject)
  })
}

/** Resolves when `count()` reaches `target`, or rejects after the timeout with how far it got. */
function until (count: () => number, target: number, what: string, sample?: () => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const started = Date.now()
    const timer = setInterval(() => {
      sample?.()
      if (count() >= target) { clearInterval(timer); resolve() } else if (Date.now() - started > TIMEOUT_MS) {
        clearInterval(timer); reject(new Error(`${what}: ${count()} of ${target} after ${TIMEOUT_MS} ms`))
      }
    }, 5)
  })
}

async function gatewayStream (broker: BrokerProcess, mode: 'record' | 'pipelined'): Promise<Record<string, number>> {
  const subscriber = await connectClient(broker.port, 'collector-bench', collectorCert)
  let received = 0
  subscriber.on('message', () => { received++ })
  await subscriber.subscribeAsync('places/#', { qos: 0 })
  const publisher = await connectClient(broker.port, 'gateway-1', deviceCert('gateway-1'))
  const topic = 'places/depot/energy/gateway-1/telemetry'
  const payload = Buffer.alloc(96, 'x')
  const rssAtStartKiB = broker.rssKiB()
  const cpu0 = broker.cpuSeconds()
  const started = performance.now()
  let sent = 0
  const message = (): Buffer => { const copy = Buffer.from(payload); copy.writeUInt32BE(sent++, 0); return copy }
  if (mode === 'record') {
    // Each publish waits for the previous write and one turn of the event
    // loop: every message in a TLS record of its own, as from a device that
    // sends each reading as it is taken. This made stock aedes quadratic.
    const next = (): void => { if (sent < MESSAGES) publisher.publish(topic, message(), { qos: 0 }, () => setImmediate(next)) }
    next()
  } else {
    // Pipelined: a synchronous loop that waits only when mqtt.js defers its
    // write callback to 'drain', so records carry many messages each.
    const pump = (): void => {
      while (sent < MESSAGES) {
        let synchronous = true
        let called = false
        publisher.publish(topic, message(), { qos: 0 }, () => { called = true; if (!synchronous) pump() })
        synchronous = false
        if (!called) return
      }
    }
    pump()
  }
  const bar = progressBar(`${broker.name} gateway (${mode})`, MESSAGES)
  const ticker = setInterval(() => bar.update(received), 200)
  let peakRssKiB = 0
  try {
    await until(() => received, MESSAGES, `${broker.name} gateway stream`, () => { peakRssKiB = Math.max(peakRssKiB, broker.rssKiB()) })
  } finally {
    clearInterval(ticker)
    bar.stop()
  }
  const seconds = (performance.now() - started) / 1000
  const result = { messages: MESSAGES, seconds: round(seconds, 2), msgPerSec: Math.round(MESSAGES / seconds), brokerCpuS: round(broker.cpuSeconds() - cpu0, 2), brokerRssMiB: round(broker.rssKiB() / 1024, 1), brokerPeakRssMiB: round(peakRssKiB / 1024, 1), brokerRssGrowthMiB: round((peakRssKiB - rssAtStartKiB) / 1024, 1) }
  publisher.end(true)
  subscriber.end(true)
  return result
}

async function fleet (broker: BrokerProcess, persistentCollector = false): Promise<Record<string, number>> {
  const subscriber = persistentCollector
    ? await connectClient(broker.port, 'collector', collectorCert, false)
    : await connectClient(broker.port, 'collector-bench', collectorCert)
  let received = 0
  subscriber.on('message', () => { received++ })
  await subscriber.subscribeAsync('places/#', { qos: 1 })
  const rssBefore = broker.rssKiB()
  const bar = progressBar(`${broker.name} connect`, DEVICES)
  const connectStarted = performance.now()
  const clients: MqttClient[] = []
  for (let i = 0; i < DEVICES; i += 50) {
    clients.push(...await Promise.all(Array.from({ length: Math.min(50, DEVICES - i) }, (_, j) => connectClient(broker.port, `dev-${i + j}`, deviceCert(`dev-${i + j}`)))))
    bar.update(clients.length)
  }
  bar.stop()
  const connectSeconds = (performance.now() - connectStarted) / 1000
  await new Promise((resolve) => setTimeout(resolve, 1000)) // let the broker settle before reading memory
  const perConnectionKiB = (broker.rssKiB() - rssBefore) / DEVICES
  const total = DEVICES * PER_DEVICE
  const cpu0 = broker.cpuSeconds()
  const started = performance.now()
  let acked = 0
  clients.forEach((client, i) => {
    const topic = `places/block-${i % 10}/housing/dev-${i}/telemetry`
    for (let m = 0; m < PER_DEVICE; m++) client.publish(topic, JSON.stringify({ seq: m, temp_c: 20.5 }), { qos: 1 }, () => { acked++ })
  })
  await until(() => Math.min(received, acked), total, `${broker.name} fleet`)
  const seconds = (performance.now() - started) / 1000
  for (const client of clients) client.end(true)
  subscriber.end(true)
  return {
    devices: DEVICES, messages: total, connectsPerSec: Math.round(DEVICES / connectSeconds), seconds: round(seconds, 2),
    msgPerSec: Math.round(total / seconds), brokerCpuS: round(broker.cpuSeconds() - cpu0, 2), idleKiBPerConnection: round(perConnectionKiB, 1),
  }
}

const results: Record<string, Record<string, Record<string, number>>> = {}
try {
  for (const name of BROKERS) {
    const port = await freePort()
    const broker = name === 'mosquitto'
      ? await startMosquitto(paths, dataDir, port)
      : name === 'node-tls-floor'
        ? await startTlsFloor(paths, port)
      // Rate limiting off: this measures the broker, not the per-device policy.
      // Every bench device comes from 127.0.0.1, where a real fleet comes from
      // many addresses: the per-address handshake limits would refuse the 50
      // concurrent connects.
      : await startPlaceGuard(dataDir, port, { publishRatePerSec: 0, maxConnections: 50_000, maxHandshakesPerAddress: 1_000, maxConnectionsPerAddress: 50_000 },
        name === 'placeguard-memory' ? { brokerState: 'memory' } : {},
        placeGuardNodeArgs(values['node-flags'], values.profile, `${name}-${[...CASES].join('+')}-${DEVICES}.cpuprofile`))
    try {
      // The session store plays no part in the streams and the plain fleet (no persistent session): run them once.
      const cases: Record<string, Record<string, number>> = {}
      if (name !== 'placeguard-memory') {
        if (CASES.has('gateway')) cases.gateway = await gatewayStream(broker, 'record')
        if (CASES.has('pipelined')) cases.pipelined = await gatewayStream(broker, 'pipelined')
        if (CASES.has('fleet')) cases.fleet = await fleet(broker)
      }
      // The floor keeps no session: a persistent collector means nothing to it.
      if (CASES.has('persistent') && name !== 'node-tls-floor') cases.persistent = await fleet(broker, true)
      results[name] = cases
    } finally {
      await broker.stop()
    }
  }
} finally {
  pki.close()
  rmSync(dataDir, { recursive: true, force: true })
}

const pg = results.placeguard ?? {}
const mq = results.mosquitto ?? {}
const pgMemory = results['placeguard-memory'] ?? {}
const floor = results['node-tls-floor']
const ratio = (a: number | undefined, b: number | undefined): number => round((a ?? 0) / (b ?? 1), 2)
/** Broker CPU per message, µs. */
const cpuPerMessage = (run: Record<string, number> | undefined): number | undefined => run && round(run.brokerCpuS! / run.messages! * 1e6, 1)
type Row = { measure: string, placeguard: number | string, mosquitto: number | string, ratio: number | string, 'node-tls-floor'?: number | string }
const rows: Row[] = []
/** `f`: the same figure for Node's TLS floor, in its own column when the floor ran. */
const row = (measure: string, a: number | undefined, b: number | undefined, f?: number): void => {
  rows.push({ measure, placeguard: a ?? '-', mosquitto: b ?? '-', ratio: a !== undefined && b ? ratio(a, b) : '-', ...floor ? { 'node-tls-floor': f ?? '-' } : {} })
}
if (pg.gateway || mq.gateway) {
  row(`gateway stream, ${MESSAGES} QoS 0, msg/s`, pg.gateway?.msgPerSec, mq.gateway?.msgPerSec, floor?.gateway?.msgPerSec)
  row('gateway stream, broker CPU s', pg.gateway?.brokerCpuS, mq.gateway?.brokerCpuS, floor?.gateway?.brokerCpuS)
  row('gateway stream, broker peak RSS MiB', pg.gateway?.brokerPeakRssMiB, mq.gateway?.brokerPeakRssMiB, floor?.gateway?.brokerPeakRssMiB)
  row('gateway stream, broker RSS growth over the stream MiB', pg.gateway?.brokerRssGrowthMiB, mq.gateway?.brokerRssGrowthMiB)
}
if (pg.pipelined || mq.pipelined) {
  row(`pipelined stream, ${MESSAGES} QoS 0, msg/s`, pg.pipelined?.msgPerSec, mq.pipelined?.msgPerSec)
  row('pipelined stream, broker peak RSS MiB', pg.pipelined?.brokerPeakRssMiB, mq.pipelined?.brokerPeakRssMiB)
  row('pipelined stream, broker RSS growth over the stream MiB', pg.pipelined?.brokerRssGrowthMiB, mq.pipelined?.brokerRssGrowthMiB)
}
if (pg.fleet || mq.fleet) {
  row(`fleet ${DEVICES}×${PER_DEVICE} QoS 1 msg/s`, pg.fleet?.msgPerSec, mq.fleet?.msgPerSec, floor?.fleet?.msgPerSec)
  row('fleet, broker CPU s', pg.fleet?.brokerCpuS, mq.fleet?.brokerCpuS, floor?.fleet?.brokerCpuS)
  row('fleet, broker CPU µs/msg', cpuPerMessage(pg.fleet), cpuPerMessage(mq.fleet), cpuPerMessage(floor?.fleet))
  row('fleet, mTLS connects/s', pg.fleet?.connectsPerSec, mq.fleet?.connectsPerSec, floor?.fleet?.connectsPerSec)
  row('idle mTLS connection, KiB', pg.fleet?.idleKiBPerConnection, mq.fleet?.idleKiBPerConnection, floor?.fleet?.idleKiBPerConnection)
}
if (pg.persistent || pgMemory.persistent || mq.persistent) {
  row(`fleet ${DEVICES}×${PER_DEVICE} QoS 1 to a persistent collector, msg/s`, pg.persistent?.msgPerSec, mq.persistent?.msgPerSec)
  row('… broker CPU µs/msg', cpuPerMessage(pg.persistent), cpuPerMessage(mq.persistent))
  row('… PlaceGuard with the in-memory session store, msg/s', pgMemory.persistent?.msgPerSec, mq.persistent?.msgPerSec)
  row('… in-memory store, broker CPU µs/msg', cpuPerMessage(pgMemory.persistent), cpuPerMessage(mq.persistent))
  if (!pg.fleet && !mq.fleet) row('idle mTLS connection, KiB', pg.persistent?.idleKiBPerConnection, mq.persistent?.idleKiBPerConnection)
}
printTable(rows)
if (pg.gateway && mq.gateway) process.stdout.write(`\ngateway stream: PlaceGuard ${ratio(pg.gateway.msgPerSec, mq.gateway.msgPerSec)}× mosquitto's rate (target ≥ 0.8×)\n`)
if (pg.persistent && pgMemory.persistent) process.stdout.write(`persistent collector: broker.db at ${ratio(pg.persistent.msgPerSec, pgMemory.persistent.msgPerSec)}× the in-memory store's rate\n`)
process.stdout.write(`results: ${saveResults('broker', { at: new Date().toISOString(), devices: DEVICES, perDevice: PER_DEVICE, messages: MESSAGES, results })}\n`)
