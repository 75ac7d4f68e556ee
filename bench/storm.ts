/**
 * npm run bench:storm — a reconnect storm: N simulated devices connected
 * to a broker all lose their connection at once, and come back with the
 * simulator's reconnect behaviour (exponential back-off with full jitter,
 * the TLS session ticket of the last connection offered). PlaceGuard and
 * mosquitto in the same run, on the same certificates, each in its own
 * process, driven by the same devices (agent-sim's SimDevice).
 *
 * Three storms per broker, one after the other on the same fleet:
 *   drop        every device's connection cut in the same instant (each
 *               device destroys its socket, as after a cell or NAT outage
 *               its modem does); the broker keeps running, so its ticket
 *               keys are intact.
 *   full        the same, with the devices offering no ticket: every
 *               reconnect a full handshake (the cost resumption saves).
 *   restart     the broker process killed (SIGKILL, a crash) and started
 *               again at once. PlaceGuard derives its ticket keys from
 *               <data-dir>/pki/tls-ticket.key and resumes across the
 *               restart; mosquitto's keys die with its process.
 *
 * Reported per storm: seconds until 90 % and all devices are back (from
 * the drop; for restart also from the broker listening again), full and
 * resumed handshakes (as the devices' TLS sockets report them,
 * `isSessionReused()`, the same for both brokers; test/broker checks the
 * broker's own count agrees), connections that reached CONNACK (more than
 * the fleet when the broker dropped some again), broker CPU per reconnect
 * (TLS handshake, MQTT CONNECT and the end of the dropped session) from
 * /proc, and the fleet's own CPU (this process: the devices' side of the
 * same handshakes, on the same cores as the broker).
 *
 * Devices connect from loopback addresses of their own (127.2.x.y), as a
 * fleet does from its own addresses, so PlaceGuard's per-address limits
 * see a fleet rather than one host. (`ss -K` on the broker's port was
 * tried for the drop: it takes seconds to kill 20,000 sockets, so the drop
 * was not at once.)
 *
 * `--brokers node-tls-floor` adds Node's TLS floor (lib/tls-floor-broker.ts:
 * node:tls with just enough MQTT to answer, no broker work), drop and full
 * storms only: what a reconnect costs any broker on Node.
 *
 *   npm run bench:storm -- [--devices 10000] [--timeout 180s] [--brokers placeguard,mosquitto,node-tls-floor]
 *     [--storms drop,full,restart] [--broker-state sqlite|memory] [--profile DIR] [--node-flags=…]
 *   (--broker-state: where PlaceGuard keeps sessions; sqlite, broker.db, is
 *   its default and the bench's; memory keeps nothing across a restart)
 *   (--profile: PlaceGuard's broker under --cpu-prof, its .cpuprofile in DIR;
 *   --node-flags: V8/Node flags for PlaceGuard's broker, comma-separated)
 */
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { DEFAULT_MIX, DEFAULT_SITES, loopbackAddress, planFleet } from '../agent-sim/index.ts'
import { parseBrokerUrls } from '../agent-sim/broker-urls.ts'
import { Random } from '../agent-sim/random.ts'
import { type DeviceEnvironment, SimDevice } from '../agent-sim/sim-device.ts'
import { SimStats } from '../agent-sim/stats.ts'
import { deviceFiles, FleetPki } from '../pki/index.ts'
import { parseDuration } from '../shared/duration.ts'
import { type BrokerProcess, freePort, parseBrokerNames, placeGuardNodeArgs, startMosquitto, startPlaceGuard, startTlsFloor } from './lib/brokers.ts'
import { printTable, progressBar, round, saveResults } from './lib/report.ts'

const { values } = parseArgs({ options: {
  devices: { type: 'string', default: '10000' },
  timeout: { type: 'string', default: '180s' },
  brokers: { type: 'string', default: 'placeguard,mosquitto' },
  storms: { type: 'string', default: 'drop,full,restart' },
  'broker-state': { type: 'string', default: 'sqlite' },
  profile: { type: 'string' },
  'node-flags': { type: 'string', default: '' },
} })
const STORMS = values.storms.split(',').map((storm) => {
  if (storm !== 'drop' && storm !== 'full' && storm !== 'restart') throw new Error(`--storms takes drop, full and/or restart, not ${storm}`)
  return storm
})
const BROKER_STATE = values['broker-state']
if (BROKER_STATE !== 'sqlite' && BROKER_STATE !== 'memory') throw new Error(`--broker-state takes sqlite or memory, not ${BROKER_STATE}`)
const BROKERS = parseBrokerNames(values.brokers, ['placeguard', 'mosquitto', 'node-tls-floor'] as const)
const DEVICES = Number(values.devices)
const TIMEOUT_MS = parseDuration('--timeout', values.timeout)
if (!Number.isInteger(DEVICES) || DEVICES < 1) throw new Error(`--devices must be a whole number of at least 1, not ${values.devices}`)

ensureOpenFiles(DEVICES + 1_000)

type BrokerName = BrokerProcess['name']
type StormKind = 'drop' | 'full' | 'restart'

interface StormResult {
  broker: BrokerName
  storm: StormKind
  devices: number
  backOf: number
  /** From the drop: the first device back (for `restart`, about the broker's downtime), 90 % of the fleet, all of it. */
  firstBackS: number
  p90S: number
  allBackS: number
  /** Connections that reached CONNACK: above `devices` when the broker dropped some again. */
  reconnects: number
  full: number
  resumed: number
  brokerCpuS: number
  /** This process's CPU over the storm: the simulated fleet's side of the same handshakes, on the same cores. */
  fleetCpuS: number
  cpuMsPerReconnect: number
}

const dataDir = mkdtempSync(join(tmpdir(), 'placeguard-bench-storm-'))
const pki = new FleetPki(dataDir)
const results: StormResult[] = []
try {
  await pki.init()
  const plan = planFleet(DEVICES, DEFAULT_MIX, DEFAULT_SITES, 7)
  const issueBar = progressBar('issuing identities', 1)
  await pki.issueMany(plan.map(({ deviceId, kind, site }) => ({ deviceId, kind, site })))
  issueBar.update(1)
  issueBar.stop()
  const ca = readFileSync(pki.paths.caCert)

  for (const name of BROKERS) {
    const port = await freePort()
    const start = (): Promise<BrokerProcess> => name === 'mosquitto'
      ? startMosquitto(pki.paths, dataDir, port)
      : name === 'node-tls-floor'
        ? startTlsFloor(pki.paths, port)
        // Rate limit off: the devices stay silent anyway; this measures connections.
        : startPlaceGuard(dataDir, port, { publishRatePerSec: 0, maxConnections: DEVICES * 2 + 1_000, reservedConnections: 1_000 }, { brokerState: BROKER_STATE },
          placeGuardNodeArgs(values['node-flags'], values.profile, `placeguard-storm-${DEVICES}-${Date.now()}.cpuprofile`))
    let broker = await start()
    // What starting costs the broker, taken off the restarted process's CPU.
    const startupCpuS = broker.cpuSeconds()
    const stats = new SimStats()
    const environment: DeviceEnvironment = {
      brokers: parseBrokerUrls('broker', [`mqtts://127.0.0.1:${port}`]), intervalMs: 3_600_000, stats,
      reconnectBaseMs: 1_000, reconnectMaxMs: 60_000, tlsResumption: true,
    }
    const devices = plan.map((spec, i) => {
      const files = deviceFiles(pki.paths.devicesDir, spec.deviceId)
      const device = new SimDevice(spec, { ca, cert: readFileSync(files.cert), key: readFileSync(files.key), localAddress: loopbackAddress(i) }, new Random(spec.seed), environment)
      device.silence(false) // connections only: no telemetry
      return device
    })
    try {
      const bar = progressBar(`${name}: connecting`, DEVICES)
      const ticker = setInterval(() => bar.update(stats.connected), 200)
      await forEachLimited(devices, 100, (device) => device.start())
      clearInterval(ticker)
      bar.stop()
      if (stats.connected < DEVICES) throw new Error(`${name}: only ${stats.connected} of ${DEVICES} devices connected`)
      await sleep(2_000) // tickets in, broker settled

      // The floor keeps no ticket keys across a restart: it stands for Node's TLS, not for a broker's recovery.
      for (const storm of STORMS.filter((kind) => kind !== 'restart' || name !== 'node-tls-floor')) {
        environment.tlsResumption = storm !== 'full'
        await sleep(1_000)
        const before = { drops: stats.drops, reconnects: stats.reconnects, full: stats.tlsFull, resumed: stats.tlsResumed }
        let cpu0 = broker.cpuSeconds()
        const fleetCpu0 = process.cpuUsage()
        const dropped = performance.now()
        // Devices back, not reconnections: a device the broker drops again
        // during the storm reconnects twice, and counting its reconnections
        // would call the fleet back while some of it is still out.
        const back = () => stats.drops - before.drops < DEVICES ? 0 : devices.reduce((n, device) => n + (device.connected ? 1 : 0), 0)
        let firstBackAt: number | undefined
        const firstBack = setInterval(() => { if (back() > 0) { firstBackAt ??= performance.now(); clearInterval(firstBack) } }, 5)
        if (storm === 'restart') {
          process.kill(broker.pid, 'SIGKILL')
          await broker.stop()
          // Started again at once, as a supervisor would; the devices find it
          // by themselves (the bench's own port check may see it late).
          broker = await start()
          cpu0 = startupCpuS
        } else {
          for (const device of devices) device.flap()
        }
        const debug = process.env.STORM_DEBUG ? setInterval(() => process.stderr.write(`\n${storm}: drops ${stats.drops} reconnects ${stats.reconnects} errors ${stats.connectErrors} full ${stats.tlsFull} resumed ${stats.tlsResumed}\n`), 2_000) : undefined
        const stormBar = progressBar(`${name}: ${storm} storm`, DEVICES)
        let p90At: number | undefined
        const deadline = dropped + TIMEOUT_MS
        while (back() < DEVICES && performance.now() < deadline) {
          if (p90At === undefined && back() >= 0.9 * DEVICES) p90At = performance.now()
          stormBar.update(back())
          await sleep(10)
        }
        const allBackAt = performance.now()
        clearInterval(firstBack)
        clearInterval(debug)
        stormBar.stop()
        const brokerCpuS = broker.cpuSeconds() - cpu0
        const fleetCpu = process.cpuUsage(fleetCpu0)
        const full = stats.tlsFull - before.full
        const resumed = stats.tlsResumed - before.resumed
        results.push({
          broker: name, storm, devices: DEVICES, backOf: back(),
          firstBackS: round(((firstBackAt ?? allBackAt) - dropped) / 1000, 2),
          p90S: round(((p90At ?? allBackAt) - dropped) / 1000, 2), allBackS: round((allBackAt - dropped) / 1000, 2),
          reconnects: stats.reconnects - before.reconnects, full, resumed, brokerCpuS: round(brokerCpuS, 2), fleetCpuS: round((fleetCpu.user + fleetCpu.system) / 1e6, 2), cpuMsPerReconnect: round(brokerCpuS * 1000 / Math.max(1, full + resumed), 3),
        })
        if (back() < DEVICES) process.stderr.write(`${name} ${storm}: ${back()} of ${DEVICES} back after ${TIMEOUT_MS} ms\n`)
        // The next storm starts from a whole fleet: stragglers of this one must not count there.
        while (devices.some((device) => !device.connected) && performance.now() < deadline + TIMEOUT_MS) await sleep(100)
        await sleep(2_000) // tickets in
      }
    } finally {
      await Promise.all(devices.map((device) => device.stop(0)))
      await broker.stop()
    }
  }
} finally {
  pki.close()
  rmSync(dataDir, { recursive: true, force: true })
}

process.stdout.write(`\nReconnect storm, ${DEVICES} devices, ${new Date().toISOString()}, ${machine()}\n\n`)
printTable(results.map((r) => ({
  broker: r.broker, storm: r.storm, back: `${r.backOf}/${r.devices}`, 'first back s': r.firstBackS, '90% back s': r.p90S, 'all back s': r.allBackS,
  reconnects: r.reconnects, full: r.full, resumed: r.resumed, 'broker CPU s': r.brokerCpuS, 'CPU ms/reconnect': r.cpuMsPerReconnect, 'fleet CPU s': r.fleetCpuS,
})))
process.stdout.write(`results: ${saveResults('storm', { at: new Date().toISOString(), devices: DEVICES, machine: machine(), results })}\n`)

/**
 * Each device holds a socket in this process (and each broker one per
 * device in its own). Node cannot raise its own RLIMIT_NOFILE, so when the
 * soft limit is too low and the hard one allows it, the bench runs itself
 * again under `ulimit -n <hard>` (brokers it starts inherit it).
 */
function ensureOpenFiles (needed: number): void {
  const [, soft, hard] = /Max open files\s+(\S+)\s+(\S+)/.exec(readFileSync('/proc/self/limits', 'utf8')) ?? []
  const limit = (value: string | undefined) => value === 'unlimited' ? Infinity : Number(value)
  if (limit(soft) >= needed) return
  if (limit(hard) < needed || process.env.PLACEGUARD_BENCH_ULIMIT_RAISED) {
    throw new Error(`${needed} open files needed, the limit is ${soft} (hard ${hard}): raise it (ulimit -n ${needed}, or LimitNOFILE) or use fewer --devices`)
  }
  const child = spawnSync('/bin/sh', ['-c', `ulimit -n ${hard} && exec "$@"`, 'sh', process.execPath, ...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit', env: { ...process.env, PLACEGUARD_BENCH_ULIMIT_RAISED: '1' },
  })
  process.exit(child.status ?? 1)
}

function machine (): string {
  const cpu = /model name\s*:\s*(.+)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown CPU'
  return `${cpu.trim()}, ${readFileSync('/proc/cpuinfo', 'utf8').match(/^processor\s*:/gm)?.length ?? '?'} cores, Node ${process.version}`
}

async function forEachLimited<T> (items: T[], limit: number, work: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0
  const lane = async (): Promise<void> => {
    while (next < items.length) await work(items[next++]!)
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane))
}

function sleep (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
