/**
 * `placeguard sim --network chirpstack|tts`: a network server's MQTT
 * integration publishing a whole fleet's events through one connection
 * and one integration certificate, as ChirpStack v4 and The Things Stack
 * v3 do: joins at start (OTAA devices) and now and then a rejoin, uplinks
 * every interval ±20 % with the kind's readings decoded, gateways and
 * signal per uplink. Incidents of the scenario change what the devices do
 * or how they are heard, never the labels, and each lands in the ground
 * truth with the DevEUI (an unknown device has no device id at PlaceGuard).
 */
import { appendFileSync, writeFileSync } from 'node:fs'
import mqtt, { type MqttClient } from 'mqtt'
import { FleetPki } from '../pki/index.ts'
import { PlaceGuardError } from '../shared/errors.ts'
import type { LorawanNetwork } from '../shared/lorawan.ts'
import { parseBrokerUrls } from './broker-urls.ts'
import { DEFAULT_MIX, DEFAULT_SITES, type KindMix } from './fleet-plan.ts'
import type { PublishedEvent } from './lorawan-events.ts'
import { type LorawanSimDevice } from './lorawan-device.ts'
import { buildLorawanFleet, type LorawanFleet } from './lorawan-fleet.ts'
import { type IntegrationRequest, type LorawanProvisionPlan, provisionLorawan } from './lorawan-provision.ts'
import { newGateway } from './lorawan-radio.ts'
import { Random } from './random.ts'
import { assertScenarioFits, type Injection, planInjections, type Scenario, type TruthRecord } from './scenario.ts'
import { SimStats } from './stats.ts'

export interface LorawanSimulationOptions {
  dataDir: string
  /** One broker, mqtts://: a network server's integration holds one connection. */
  brokerUrl: string
  network: LorawanNetwork
  devices: number
  intervalMs: number
  /** 0 runs until `signal` aborts. */
  durationMs: number
  /** The integration's id (its certificate, its MQTT client id); default `sim-<network>`. */
  integrationId?: string
  /** The integration's site; default the first of `sites`. */
  site?: string
  mix?: KindMix
  sites?: string[]
  scenario?: Scenario
  truthFile?: string
  seed?: number
  /** Chance per uplink that an OTAA device rejoins instead (a power cycle, a lost session); default 1 in 5,000. */
  rejoinChance?: number
  signal?: AbortSignal
  onPhase?: (phase: 'provision' | 'connect' | 'run' | 'stop', total: number) => void
  onProgress?: (snapshot: { connected: number, devices: number, sent: number, acked: number, failed: number, connectErrors: number, reconnects: number }) => void
  /** Each event the broker acknowledged. */
  onAcked?: (event: PublishedEvent) => void
}

export interface LorawanSimulationSummary {
  network: LorawanNetwork
  integrationId: string
  devices: number
  gateways: number
  connectMs: number
  provisionMs: number
  sent: number
  acked: number
  failed: number
  uplinks: number
  joins: number
  publishAckP50Ms: number | null
  publishAckP99Ms: number | null
  runMs: number
  ackedPerSec: number
  reconnects: number
  issued: number
  reused: number
  registered: number
  injected: number
}

/** What the simulator keeps of each incident until it has happened on the wire. */
interface Pending { injection: Injection, device: LorawanSimDevice, ready: () => boolean, apply: () => void }

export async function runLorawanSimulation (options: LorawanSimulationOptions): Promise<LorawanSimulationSummary> {
  const [broker] = parseBrokerUrls('brokerUrl', [options.brokerUrl])
  const seed = options.seed ?? Date.now() % 2 ** 31
  const sites = options.sites ?? DEFAULT_SITES
  const integrationId = options.integrationId ?? `sim-${options.network}`
  const integration: IntegrationRequest = { integrationId, network: options.network, site: options.site ?? sites[0]! }
  if (options.scenario) assertScenarioFits(options.scenario, 'lorawan')
  const fleet = buildLorawanFleet({ network: options.network, devices: options.devices, mix: options.mix ?? DEFAULT_MIX, sites, seed, smallSites: options.scenario?.smallSites })
  const injections = options.scenario ? planInjections(options.scenario, fleet.devices.map((d) => d.spec), seed) : []
  const byId = new Map(fleet.devices.map((device) => [device.spec.deviceId, device]))
  const peer: IntegrationRequest = { ...integration, integrationId: `${integrationId}-peer` }

  const pki = new FleetPki(options.dataDir)
  let client: MqttClient | undefined
  const timers = new Set<NodeJS.Timeout>()
  try {
    options.onPhase?.('provision', fleet.devices.length)
    const provisionStarted = performance.now()
    const provision = await provisionLorawan(pki, provisionPlan(fleet, injections, integration, peer))
    const provisionMs = Math.round(performance.now() - provisionStarted)

    options.onPhase?.('connect', 1)
    const stats = new SimStats()
    const connectStarted = performance.now()
    client = await connectIntegration(broker!.url, integrationId, provision.credentials, stats)
    const connectMs = Math.round(performance.now() - connectStarted)
    let uplinks = 0
    let joins = 0
    let stopped = false
    const publish = (device: LorawanSimDevice, event: PublishedEvent): void => {
      if (stopped) return
      if (event.topic.endsWith('/up')) uplinks++
      else joins++
      const startedAt = performance.now()
      stats.published(device.spec.deviceId)
      client!.publish(event.topic, event.payload, { qos: 1 }, (error) => {
        stats.settled(device.spec.deviceId, error ? undefined : performance.now() - startedAt)
        if (!error) options.onAcked?.(event)
      })
    }
    const later = (delayMs: number, work: () => void): void => {
      const timer = setTimeout(() => { timers.delete(timer); if (!stopped) work() }, delayMs)
      timers.add(timer)
    }

    if (options.truthFile) writeFileSync(options.truthFile, '')
    const truth = (injection: Injection, device: LorawanSimDevice, atMs: number): void => {
      if (!options.truthFile) return
      const record: TruthRecord = { deviceId: injection.deviceId, policy: injection.policy, startedAt: new Date(atMs).toISOString(), devEui: device.identity.devEui, integrationId }
      appendFileSync(options.truthFile, JSON.stringify(record) + '\n')
    }
    const incidents = new Incidents(fleet, options.network, new Random(seed ^ 0x1c1d), publish, later)
    const pending = new Map<LorawanSimDevice, Pending[]>()
    /** Before each uplink: incidents whose moment has come and whose device is ready (a counter to go back from). */
    const applyDue = (device: LorawanSimDevice): boolean => {
      const list = pending.get(device)
      if (!list) return false
      let applied = false
      for (const item of [...list]) {
        if (!item.ready()) continue
        list.splice(list.indexOf(item), 1)
        truth(item.injection, device, Date.now())
        item.apply()
        applied = true
      }
      return applied
    }

    const rejoinChance = options.rejoinChance ?? 1 / 5_000
    const jitter = new Random(seed ^ 0x7177)
    const tick = (device: LorawanSimDevice): void => {
      const applied = applyDue(device)
      if (!device.silent) {
        // Not on the uplink an incident has just shaped: a rejoin there would hide it (a reset counter looks like a join's).
        if (device.activation === 'otaa' && !applied && jitter.next() < rejoinChance) {
          publish(device, device.join(Date.now()))
        } else {
          publish(device, device.uplink(Date.now()))
        }
      }
      later(options.intervalMs * jitter.between(0.8, 1.2), () => tick(device))
    }

    options.onPhase?.('run', options.durationMs)
    const runStartedPerf = performance.now()
    const ackedBefore = stats.acked
    for (const injection of injections) {
      const device = byId.get(injection.deviceId)!
      const effect = incidents.effect(injection, device)
      if (effect.beforeStart) effect.beforeStart()
      const arm = (): void => {
        const item: Pending = { injection, device, ready: effect.ready ?? (() => true), apply: effect.apply }
        // Incidents that act on the wire themselves (a join flood, a burst) happen now; the others at the device's next uplink.
        if (effect.immediate) { truth(injection, device, Date.now()); effect.apply() } else pending.set(device, [...pending.get(device) ?? [], item])
      }
      if (injection.at > 0) later(injection.at, arm)
      else arm()
    }
    for (const device of fleet.devices) {
      // Spread over the first interval; an OTAA device joins first and sends its first uplink a moment later.
      later(jitter.next() * options.intervalMs, () => {
        if (device.activation === 'otaa' && !device.silent) {
          publish(device, device.join(Date.now()))
          later(options.intervalMs * jitter.between(0.1, 0.3), () => tick(device))
        } else {
          tick(device)
        }
      })
    }
    const progress = setInterval(() => options.onProgress?.({
      connected: client?.connected ? 1 : 0, devices: fleet.devices.length, sent: stats.sent, acked: stats.acked, failed: stats.failed, connectErrors: stats.connectErrors, reconnects: stats.reconnects,
    }), 500)
    try {
      await sleep(options.durationMs, options.signal)
    } finally {
      clearInterval(progress)
    }
    stopped = true
    for (const timer of timers) clearTimeout(timer)
    const runMs = performance.now() - runStartedPerf
    const ackedDuringRun = stats.acked - ackedBefore
    options.onPhase?.('stop', 1)
    const deadline = Date.now() + 10_000
    while (stats.sent > stats.acked + stats.failed && Date.now() < deadline && client.connected) await new Promise((resolve) => setTimeout(resolve, 50))
    stats.closeOutstanding()
    return {
      network: options.network, integrationId, devices: fleet.devices.length, gateways: [...fleet.gateways.values()].reduce((n, list) => n + list.length, 0),
      connectMs, provisionMs, sent: stats.sent, acked: stats.acked, failed: stats.failed, uplinks, joins,
      publishAckP50Ms: stats.percentile(50), publishAckP99Ms: stats.percentile(99),
      runMs: Math.round(runMs), ackedPerSec: Math.round(ackedDuringRun / Math.max(0.001, runMs / 1000)), reconnects: stats.reconnects,
      issued: provision.issued, reused: provision.reused, registered: provision.registered, injected: injections.length,
    }
  } finally {
    for (const timer of timers) clearTimeout(timer)
    if (client) await new Promise<void>((resolve) => client!.end(true, {}, () => resolve()))
    pki.close()
  }
}

/**
 * Registrations: every device to our integration, except those of a
 * lorawan-unknown-device incident: unregistered (none), or registered to a
 * peer integration instead (which then needs a certificate of its own).
 */
export function provisionPlan (fleet: LorawanFleet, injections: Injection[], integration: IntegrationRequest, peer: IntegrationRequest): LorawanProvisionPlan {
  const unknown = new Map(injections.filter((i) => i.policy === 'lorawan-unknown-device').map((i) => [i.deviceId, i.mode]))
  const devices = fleet.devices.filter((device) => unknown.get(device.spec.deviceId) !== 'unregistered').map((device) => ({
    deviceId: device.spec.deviceId, kind: device.spec.kind, site: device.spec.site, devEui: device.identity.devEui,
    integrationId: unknown.get(device.spec.deviceId) === 'other-integration' ? peer.integrationId : integration.integrationId,
  }))
  const needsPeer = [...unknown.values()].includes('other-integration')
  return { integration, peers: needsPeer ? [peer] : [], devices }
}

interface Effect {
  /** Done before the run starts (a device that must not appear until its moment). */
  beforeStart?: () => void
  /** Acts on the wire at once rather than at the device's next uplink. */
  immediate?: boolean
  ready?: () => boolean
  apply: () => void
}

/** What each incident does to a device, as a network server would show it. */
export class Incidents {
  readonly #fleet: LorawanFleet
  readonly #network: LorawanNetwork
  readonly #rng: Random
  readonly #publish: (device: LorawanSimDevice, event: PublishedEvent) => void
  readonly #later: (delayMs: number, work: () => void) => void

  constructor (fleet: LorawanFleet, network: LorawanNetwork, rng: Random, publish: (device: LorawanSimDevice, event: PublishedEvent) => void, later: (delayMs: number, work: () => void) => void) {
    this.#fleet = fleet
    this.#network = network
    this.#rng = rng
    this.#publish = publish
    this.#later = later
  }

  effect (injection: Injection, device: LorawanSimDevice): Effect {
    switch (injection.policy) {
      case 'lorawan-unknown-device':
        // Absent until its moment, then it appears: joins (OTAA) and sends uplinks.
        return {
          beforeStart: () => { if (injection.at > 0) device.silent = true },
          ready: () => true,
          apply: () => {
            if (!device.silent) return
            device.silent = false
            if (device.activation === 'otaa') this.#publish(device, device.join(Date.now()))
          },
        }
      case 'lorawan-fcnt-reset':
        return injection.mode === 'reset'
          // Going back needs somewhere to go back from, and a 16-bit counter about to wrap would make a reset look like a wrap.
          ? { ready: () => device.fCnt >= 3 && (device.counterBits === 32 || device.fCnt < 64_000), apply: () => device.resetCounter() }
          : { ready: () => device.fCnt >= injection.back + 1, apply: () => device.replayCounter(injection.back) }
      case 'lorawan-join-flood':
        return {
          immediate: true,
          apply: () => {
            const gapMs = injection.duration / injection.count
            for (let i = 0; i < injection.count; i++) this.#later(i * gapMs, () => this.#publish(device, device.join(Date.now())))
          },
        }
      case 'lorawan-gateway-shift':
        return {
          apply: () => {
            if (injection.mode === 'unknown-gateway') {
              device.radio.hearOnlyThrough([newGateway(device.spec.site, this.#network, this.#rng)])
              return
            }
            const elsewhere = [...this.#fleet.gateways.keys()].filter((site) => site !== device.spec.site)
            if (elsewhere.length === 0) throw new PlaceGuardError('PG_ERR_SCENARIO_INVALID', 'lorawan-gateway-shift: mode other-site needs a fleet on two sites or more', { field: 'mode' })
            const site = elsewhere[Math.floor(this.#rng.next() * elsewhere.length)]!
            device.radio.hearOnlyThrough(this.#fleet.gateways.get(site)!.slice(0, 2))
          },
        }
      case 'lorawan-signal-shift':
        return { apply: () => device.radio.weaken(injection.rssiDrop, injection.snrDrop) }
      case 'device-silent':
        // A radio device out of coverage keeps nothing: its uplinks in the meantime are lost, not sent later.
        return { immediate: true, apply: () => {
          device.silent = true
          if (injection.duration !== undefined) setTimeout(() => { device.silent = false }, injection.duration).unref()
        } }
      case 'rate-burst':
        return {
          immediate: true,
          apply: () => {
            if (injection.mode === 'flood') {
              for (let i = 0; i < injection.count; i++) this.#publish(device, device.uplink(Date.now()))
              return
            }
            const gapMs = 1000 / injection.ratePerSec
            for (let i = 0; i < Math.floor(injection.duration / gapMs); i++) this.#later(i * gapMs, () => this.#publish(device, device.uplink(Date.now())))
          },
        }
      case 'firmware-outdated':
      case 'firmware-vulnerable':
        return {
          beforeStart: () => { if (injection.at === 0) device.firmware = injection.fw },
          apply: () => { device.firmware = injection.fw },
        }
      case 'firmware-downgrade':
        // Lower than the previous uplink's version: there must be one on the firmware it ran before.
        return { ready: () => device.uplinks >= 1, apply: () => { device.firmware = injection.fw } }
      default:
        // assertScenarioFits refused these before anything started.
        throw new PlaceGuardError('PG_ERR_SCENARIO_INVALID', `${injection.policy} cannot be injected into a LoRaWAN fleet`, { field: 'policy' })
    }
  }
}

/** The integration's one MQTT connection; mqtt.js reconnects it every 2 s (one client: no herd to spread). */
function connectIntegration (url: string, clientId: string, credentials: { ca: Buffer, cert: Buffer, key: Buffer }, stats: SimStats): Promise<MqttClient> {
  const client = mqtt.connect(url, { ...credentials, clientId, clean: true, keepalive: 60, reconnectPeriod: 2_000, connectTimeout: 30_000 })
  return new Promise((resolve, reject) => {
    let first = true
    client.on('connect', () => {
      if (first) { first = false; stats.connected++; resolve(client) } else stats.reconnected(url, 0)
    })
    client.on('close', () => {
      if (!first) return
      client.end(true)
      reject(new PlaceGuardError('PG_ERR_SIM_BROKER', `the integration ${clientId} could not connect to ${url}`, {
        hint: 'is the broker running, and does it use this data directory\'s fleet CA?',
      }))
    })
    client.on('error', () => { stats.connectErrors++ })
  })
}

function sleep (ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve()
    const timer = ms > 0 ? setTimeout(resolve, ms) : undefined
    signal?.addEventListener('abort', () => { clearTimeout(timer); resolve() }, { once: true })
  })
}
