import { appendFileSync, readFileSync, writeFileSync } from 'node:fs'
import { FleetPki, deviceFiles } from '../pki/index.ts'
import { invalidInput, PlaceGuardError } from '../shared/errors.ts'
import { type BrokerTarget, parseBrokerUrls } from './broker-urls.ts'
import { DEFAULT_MIX, DEFAULT_SITES, type KindMix, planFleet, planSmallSites } from './fleet-plan.ts'
import { inject, injectBeforeStart, type InjectionContext } from './injectors.ts'
import { provisionFleet } from './provision.ts'
import { Random } from './random.ts'
import { assertScenarioFits, type Injection, planInjections, type Scenario, type TruthRecord } from './scenario.ts'
import { SimDevice, type DeviceEnvironment } from './sim-device.ts'
import { SimStats } from './stats.ts'

export interface SimulationOptions {
  dataDir: string
  /** One broker, or one load balancer in front of several; or give `brokerUrls`. */
  brokerUrl?: string
  /**
   * Broker nodes, each mqtts://: device i starts on brokerUrls[i % n] and
   * moves to the next URL after each failed connection attempt.
   */
  brokerUrls?: string[]
  devices: number
  intervalMs: number
  /** 0 runs until `signal` aborts. */
  durationMs: number
  mix?: KindMix
  sites?: string[]
  scenario?: Scenario
  /** JSON lines, one per injected incident: deviceId, policy, startedAt. */
  truthFile?: string
  seed?: number
  /** TLS handshakes in flight at once while the fleet connects. */
  connectConcurrency?: number
  /**
   * The source address of device i's connections (e.g. `loopbackAddress`).
   * Unset, every device connects from the machine's own address, and a
   * PlaceGuard broker's per-address limits (docs/broker.md) see one host
   * opening the whole fleet: beyond `maxHandshakesPerAddress` handshakes
   * at once it refuses, and the refused devices back off and try again.
   */
  localAddress?: (deviceIndex: number) => string
  signal?: AbortSignal
  onPhase?: (phase: 'provision' | 'connect' | 'run' | 'stop', total: number) => void
  onProgress?: (snapshot: SimSnapshot) => void
  /** Each publish the broker acknowledged (device and payload): for accounting message by message. */
  onAcked?: (deviceId: string, payload: string) => void
}

export interface SimSnapshot {
  connected: number
  devices: number
  sent: number
  acked: number
  failed: number
  connectErrors: number
  /** Connections that were up and were lost so far; `reconnects` counts those a reconnect followed. */
  drops: number
  reconnects: number
}

/** The `--json` summary (docs/product.md) and a few more figures. */
export interface SimulationSummary {
  devices: number
  connected: number
  connectMs: number
  provisionMs: number
  sent: number
  acked: number
  failed: number
  publishAckP50Ms: number | null
  publishAckP99Ms: number | null
  runMs: number
  ackedPerSec: number
  reconnects: number
  /** Reconnects by the broker URL they landed on. */
  reconnectsByUrl: Record<string, number>
  /** Established connections lost during the run (a broker gone, a flapping device, a revoked one). */
  drops: number
  /** Of those, devices not connected again by the end of the run (left out of the times below). */
  dropsNotReconnected: number
  /** From losing a connection to the next CONNACK, over the drops that reconnected: "back within". */
  timeToReconnectP50Ms: number | null
  timeToReconnectP99Ms: number | null
  timeToReconnectMaxMs: number | null
  /** Completed TLS handshakes: full, and resumed from the previous connection's session ticket. */
  tlsHandshakesFull: number
  tlsHandshakesResumed: number
  connectErrors: number
  issued: number
  reused: number
  injected: number
  rssMiB: number
  memoryPerDeviceKiB: number
}

export async function runSimulation (options: SimulationOptions): Promise<SimulationSummary> {
  const brokers = brokersOf(options)
  const seed = options.seed ?? Date.now() % 2 ** 31
  const fleet = [...planFleet(options.devices, options.mix ?? DEFAULT_MIX, options.sites ?? DEFAULT_SITES, seed), ...planSmallSites(options.scenario?.smallSites ?? [], seed)]
  if (options.scenario) assertScenarioFits(options.scenario, 'devices')
  const injections = options.scenario ? planInjections(options.scenario, fleet, seed) : []
  const pki = new FleetPki(options.dataDir)
  const cleanups: InjectionContext['cleanups'] = []
  try {
    options.onPhase?.('provision', fleet.length)
    const provisionStarted = performance.now()
    const provision = await provisionFleet(pki, fleet, injections)
    const provisionMs = Math.round(performance.now() - provisionStarted)

    const stats = new SimStats()
    const environment: DeviceEnvironment = { brokers, intervalMs: options.intervalMs, stats, reconnectBaseMs: 1_000, reconnectMaxMs: 60_000, onAcked: options.onAcked }
    const ca = readFileSync(pki.paths.caCert)
    /** Device `index` of the fleet's credentials, and its source address when the options give one. */
    const credentialsOf = (deviceId: string, index: number) => {
      const files = deviceFiles(pki.paths.devicesDir, deviceId)
      return { ca, cert: readFileSync(files.cert), key: readFileSync(files.key), ...options.localAddress ? { localAddress: options.localAddress(index) } : {} }
    }
    const rssBefore = process.memoryUsage().rss
    const devices = fleet.map((spec, i) => new SimDevice(spec, credentialsOf(spec.deviceId, i), new Random(spec.seed), environment, i))
    const byId = new Map(devices.map((device) => [device.spec.deviceId, device]))
    const pending = new Map<Injection, SimDevice>()
    for (const injection of injections) {
      const device = byId.get(injection.deviceId)!
      if (!injectBeforeStart(injection, device)) pending.set(injection, device)
    }

    const runStarted = Date.now()
    const truth = (injection: Injection, at: number): void => {
      if (!options.truthFile) return
      const record: TruthRecord = { deviceId: injection.deviceId, policy: injection.policy, startedAt: new Date(at).toISOString() }
      appendFileSync(options.truthFile, JSON.stringify(record) + '\n')
    }
    if (options.truthFile) writeFileSync(options.truthFile, '')
    for (const injection of injections) if (!pending.has(injection)) truth(injection, runStarted)

    const progress = setInterval(() => options.onProgress?.({
      connected: devices.filter((d) => d.connected).length, devices: devices.length,
      sent: stats.sent, acked: stats.acked, failed: stats.failed, connectErrors: stats.connectErrors, drops: stats.drops, reconnects: stats.reconnects,
    }), 500)
    try {
      options.onPhase?.('connect', devices.length)
      const connectStarted = performance.now()
      await forEachLimited(devices, options.connectConcurrency ?? 100, (device) => device.start())
      const connectMs = Math.round(performance.now() - connectStarted)
      if (stats.connected === 0 && devices.length > 0) {
        await Promise.all(devices.map((device) => device.stop(0)))
        const where = brokers.length === 1 ? brokers[0]!.url : `any of ${brokers.map((b) => b.url).join(', ')}`
        throw new PlaceGuardError('PG_ERR_SIM_BROKER', `no device could connect to ${where}`, {
          hint: 'is the broker running, and does it use this data directory\'s fleet CA?',
        })
      }
      const memoryPerDeviceKiB = Math.round((process.memoryUsage().rss - rssBefore) / 1024 / Math.max(1, devices.length) * 10) / 10

      options.onPhase?.('run', options.durationMs)
      const neighbourOf = (device: SimDevice) => devices.find((d) => d !== device && d.spec.kind === device.spec.kind) ?? devices.find((d) => d !== device)!
      const timers = [...pending].map(([injection, device]) => setTimeout(() => {
        truth(injection, Date.now())
        const context: InjectionContext = { device, neighbour: neighbourOf(device), credentials: credentialsOf(device.spec.deviceId, devices.indexOf(device)), environment, pki, cleanups }
        inject(injection, context).catch((error: Error) => { process.stderr.write(`placeguard sim: ${injection.policy} on ${injection.deviceId} failed: ${error.message}\n`) })
      }, Math.max(0, runStarted + injection.at - Date.now())))
      const runStartedPerf = performance.now()
      const ackedBeforeRun = stats.acked
      await sleep(options.durationMs, options.signal)
      for (const timer of timers) clearTimeout(timer)
      const runMs = performance.now() - runStartedPerf
      // Sustained rate: what was acknowledged while the whole fleet was up, not during ramp-up or drain.
      const ackedDuringRun = stats.acked - ackedBeforeRun

      options.onPhase?.('stop', devices.length)
      const dropsNotReconnected = devices.filter((device) => device.awaitingReconnect).length
      for (const cleanup of cleanups) await cleanup()
      await Promise.all(devices.map((device) => device.stop(10_000)))
      stats.closeOutstanding()
      return {
        devices: devices.length, connected: stats.connected, connectMs, provisionMs,
        sent: stats.sent, acked: stats.acked, failed: stats.failed,
        publishAckP50Ms: stats.percentile(50), publishAckP99Ms: stats.percentile(99),
        runMs: Math.round(runMs), ackedPerSec: Math.round(ackedDuringRun / Math.max(0.001, runMs / 1000)),
        reconnects: stats.reconnects, reconnectsByUrl: Object.fromEntries(stats.reconnectsByUrl),
        drops: stats.drops, dropsNotReconnected,
        timeToReconnectP50Ms: stats.reconnectPercentile(50), timeToReconnectP99Ms: stats.reconnectPercentile(99), timeToReconnectMaxMs: stats.reconnectPercentile(100),
        tlsHandshakesFull: stats.tlsFull, tlsHandshakesResumed: stats.tlsResumed,
        connectErrors: stats.connectErrors,
        issued: provision.issued + provision.reissued, reused: provision.reused, injected: injections.length,
        rssMiB: Math.round(process.memoryUsage().rss / 1024 / 1024), memoryPerDeviceKiB,
      }
    } finally {
      clearInterval(progress)
    }
  } finally {
    pki.close()
  }
}

/** The checked broker URLs of `brokerUrl` or `brokerUrls` (exactly one of them). */
function brokersOf (options: SimulationOptions): BrokerTarget[] {
  if (options.brokerUrl !== undefined && options.brokerUrls !== undefined) throw invalidInput('brokerUrls', 'give brokerUrl or brokerUrls, not both')
  if (options.brokerUrl !== undefined) return parseBrokerUrls('brokerUrl', [options.brokerUrl])
  return parseBrokerUrls('brokerUrls', options.brokerUrls ?? [])
}

/** Runs `work` over items with at most `limit` in flight. */
async function forEachLimited<T> (items: T[], limit: number, work: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0
  const lane = async (): Promise<void> => {
    while (next < items.length) await work(items[next++]!)
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane))
}

function sleep (ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve()
    const timer = ms > 0 ? setTimeout(resolve, ms) : undefined
    signal?.addEventListener('abort', () => { clearTimeout(timer); resolve() }, { once: true })
  })
}

/**
 * Device i's own loopback source address, 127.2.0.1 onwards (never a .0 or
 * .255; all of 127/8 is loopback on Linux): a fleet simulated on one
 * machine then reaches a broker on 127.0.0.1 from as many addresses as a
 * real fleet would.
 */
export function loopbackAddress (i: number): string {
  return `127.${2 + Math.floor(i / 62_500)}.${Math.floor(i / 250) % 250 + 1}.${i % 250 + 1}`
}
