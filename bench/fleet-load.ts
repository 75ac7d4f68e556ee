/**
 * npm run bench:fleet-load — the broker under the load a city runs every
 * day: D devices, each publishing QoS 1 telemetry every `interval`, for
 * `duration`, from the fleet simulator (agent-sim), against PlaceGuard's
 * broker and against mosquitto on the same certificates, in the same run.
 * One subscriber takes everything (`places/#` at QoS 1), as the collector
 * does.
 *
 * Devices connect from loopback addresses of their own (127.2.x.y), as a
 * fleet does from its own addresses. From one address, PlaceGuard's
 * per-address handshake limit (20 at once) refused most of the fleet's
 * first attempts; the refused devices backed off and kept trying well into
 * the measured run, and their handshakes were counted as messages' CPU
 * (190 against 127 µs a message on 2 December; docs/perf/broker-fleet.md).
 * Connect errors are reported with the figures: a run where any device
 * was refused measured something else.
 *
 * Read from /proc of the broker process: CPU seconds over the run, per
 * acknowledged message; resident memory before the fleet connects, once it
 * is connected and idle, and at its peak under load, per device. The
 * ratios (PlaceGuard ÷ mosquitto) are the result; absolute figures drift on
 * a shared machine.
 *
 *   npm run bench:fleet-load -- [--devices 2000] [--interval 500ms] [--duration 30s]
 *     [--connect-concurrency 100]   (TLS handshakes the fleet runs at once while connecting)
 *     [--profile DIR]   (PlaceGuard's broker under --cpu-prof, its .cpuprofile in DIR)
 *     [--node-flags=--max-semi-space-size=4,…]   (V8/Node flags for PlaceGuard's broker)
 *     [--brokers placeguard,mosquitto,node-tls-floor]   (node-tls-floor: Node's TLS sockets with just
 *                        enough MQTT to answer, lib/tls-floor-broker.ts — the cost no broker on Node avoids;
 *                        mqtt-codec-floor, not run by default: that floor with mqtt-packet parsing and writing every
 *                        packet and QoS 1 delivered with the subscriber's own ids, lib/mqtt-codec-floor-broker.ts;
 *                        aedes, not run by default: aedes as shipped on the same TLS, lib/aedes-broker.ts)
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import mqtt from 'mqtt'
import { loopbackAddress, runSimulation } from '../agent-sim/index.ts'
import { FleetPki } from '../pki/index.ts'
import { parseDuration } from '../shared/duration.ts'
import { type BrokerProcess, freePort, parseBrokerNames, placeGuardNodeArgs, startMosquitto, startAedes, startPlaceGuard, startTlsFloor, startCodecFloor } from './lib/brokers.ts'
import { printTable, progressBar, round, saveResults } from './lib/report.ts'

const { values } = parseArgs({ options: {
  devices: { type: 'string', default: '2000' },
  interval: { type: 'string', default: '500ms' },
  duration: { type: 'string', default: '30s' },
  'connect-concurrency': { type: 'string', default: '100' },
  profile: { type: 'string' },
  'node-flags': { type: 'string', default: '' },
  brokers: { type: 'string', default: 'placeguard,mosquitto,node-tls-floor' },
} })
type BrokerName = BrokerProcess['name']
const BROKERS = parseBrokerNames(values.brokers, ['placeguard', 'mosquitto', 'node-tls-floor', 'mqtt-codec-floor', 'aedes'] as const)
const DEVICES = Number(values.devices)
const CONNECT_CONCURRENCY = Number(values['connect-concurrency'])
if (!Number.isInteger(CONNECT_CONCURRENCY) || CONNECT_CONCURRENCY < 1) throw new Error(`--connect-concurrency takes a whole number from 1, not ${values['connect-concurrency']}`)
const intervalMs = parseDuration('--interval', values.interval)
const durationMs = parseDuration('--duration', values.duration)
const SAMPLE_MS = 250

const dataDir = mkdtempSync(join(tmpdir(), 'placeguard-bench-fleet-load-'))
const pki = new FleetPki(dataDir)
await pki.init()
const ca = readFileSync(pki.paths.caCert)

export interface FleetLoadFigures {
  devices: number
  /** Devices connected when the run ended, and failed connection attempts (refused, timed out) over the bench. */
  connected: number
  connectErrors: number
  acked: number
  ackedPerSec: number
  received: number
  brokerCpuS: number
  cpuUsPerMessage: number
  baseRssMiB: number
  idleKiBPerDevice: number
  loadKiBPerDevice: number
}

async function run (broker: BrokerProcess): Promise<FleetLoadFigures> {
  const url = `mqtts://127.0.0.1:${broker.port}`
  const subscriber = mqtt.connect(url, { ca, cert: readFileSync(pki.paths.collectorCert), key: readFileSync(pki.paths.collectorKey), clientId: 'collector-bench', reconnectPeriod: 0 })
  let received = 0
  subscriber.on('message', () => { received++ })
  await new Promise<void>((resolve, reject) => { subscriber.once('connect', () => resolve()); subscriber.once('error', reject) })
  await subscriber.subscribeAsync('places/#', { qos: 1 })
  await new Promise((resolve) => setTimeout(resolve, 500))
  const baseKiB = broker.rssKiB()
  let idleKiB = 0
  let peakKiB = 0
  let cpuAtRun = 0
  const bar = progressBar(`${broker.name} connect`, DEVICES)
  const sampler = setInterval(() => { peakKiB = Math.max(peakKiB, broker.rssKiB()) }, SAMPLE_MS)
  try {
    const summary = await runSimulation({
      dataDir, brokerUrl: url, devices: DEVICES, intervalMs, durationMs, seed: 7, localAddress: loopbackAddress,
      connectConcurrency: CONNECT_CONCURRENCY,
      onProgress: (snapshot) => bar.update(snapshot.connected),
      onPhase: (phase) => {
        if (phase !== 'run') return
        bar.stop()
        // Connected, nothing sent yet: what the connections themselves hold.
        idleKiB = broker.rssKiB()
        peakKiB = idleKiB
        cpuAtRun = broker.cpuSeconds()
      },
    })
    const cpu = broker.cpuSeconds() - cpuAtRun
    await new Promise((resolve) => setTimeout(resolve, 1_000))
    if (summary.connectErrors > 0 || summary.connected < DEVICES) {
      process.stderr.write(`${broker.name}: ${summary.connected} of ${DEVICES} devices connected, ${summary.connectErrors} failed connection attempts: the CPU figures include them\n`)
    }
    return {
      devices: DEVICES, connected: summary.connected, connectErrors: summary.connectErrors, acked: summary.acked, ackedPerSec: Math.round(summary.ackedPerSec), received,
      brokerCpuS: round(cpu, 2), cpuUsPerMessage: round(cpu * 1e6 / Math.max(1, summary.acked), 1),
      baseRssMiB: round(baseKiB / 1024, 1),
      idleKiBPerDevice: round((idleKiB - baseKiB) / DEVICES, 1),
      loadKiBPerDevice: round((peakKiB - baseKiB) / DEVICES, 1),
    }
  } finally {
    clearInterval(sampler)
    bar.stop()
    subscriber.end(true)
  }
}

const results: Partial<Record<BrokerName, FleetLoadFigures>> = {}
try {
  for (const name of BROKERS) {
    const port = await freePort()
    const broker = name === 'mosquitto'
      ? await startMosquitto(pki.paths, dataDir, port)
      : name === 'node-tls-floor'
        ? await startTlsFloor(pki.paths, port)
        : name === 'aedes' ? await startAedes(pki.paths, port)
        : name === 'mqtt-codec-floor' ? await startCodecFloor(pki.paths, port)
        // The per-device budget is far above this load; the connection cap above the fleet.
        : await startPlaceGuard(dataDir, port, { maxConnections: DEVICES + 1_000 }, {},
          placeGuardNodeArgs(values['node-flags'], values.profile, `placeguard-fleet-load-${DEVICES}.cpuprofile`))
    try {
      process.stderr.write(`${name}: ${DEVICES} devices, one QoS 1 message every ${intervalMs} ms each, ${durationMs / 1000} s…\n`)
      results[name] = await run(broker)
    } finally {
      await broker.stop()
    }
  }
} finally {
  pki.close()
  rmSync(dataDir, { recursive: true, force: true })
}

const pg = results.placeguard
const mq = results.mosquitto
const floor = results['node-tls-floor']
const aedes = results.aedes
const codecFloor = results['mqtt-codec-floor']
if (pg && mq) {
  const ratio = (a: number, b: number): number => round(a / b, 2)
  const row = (measure: string, key: keyof FleetLoadFigures) => ({
    measure, placeguard: pg[key], mosquitto: mq[key], ratio: ratio(pg[key], mq[key]),
    // What Node's TLS path alone costs, as a share of mosquitto's whole broker.
    ...floor ? { 'node-tls-floor': floor[key], 'floor ÷ mosquitto': ratio(floor[key], mq[key]) } : {},
    ...codecFloor ? { 'mqtt-codec-floor': codecFloor[key], 'codec floor ÷ mosquitto': ratio(codecFloor[key], mq[key]) } : {},
    ...aedes ? { aedes: aedes[key], 'aedes ÷ mosquitto': ratio(aedes[key], mq[key]) } : {},
  })
  printTable([
    row('acknowledged msg/s', 'ackedPerSec'),
    row('broker CPU µs per acknowledged message', 'cpuUsPerMessage'),
    row('broker RSS per connected device, idle, KiB', 'idleKiBPerDevice'),
    row('broker RSS per connected device, peak under load, KiB', 'loadKiBPerDevice'),
    row('broker RSS before the fleet, MiB', 'baseRssMiB'),
  ])
} else {
  // Not both brokers (--brokers): the figures, no ratio.
  process.stdout.write(`${JSON.stringify(results, null, 2)}\n`)
}
process.stdout.write(`results: ${saveResults('fleet-load', { at: new Date().toISOString(), devices: DEVICES, intervalMs, durationMs, results })}\n`)
