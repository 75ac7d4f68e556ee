/**
 * One simulated device: its own certificate and TLS session, QoS 1
 * telemetry at a jittered interval with a per-device `seq`, reconnection
 * with exponential back-off and full jitter (no thundering herd after a
 * broker restart), moving to the next broker URL of its list after each
 * failed attempt, and the hooks the scenario uses to make it misbehave.
 */
import { isIP } from 'node:net'
import mqtt, { type MqttClient } from 'mqtt'
import type { BrokerTarget } from './broker-urls.ts'
import { telemetryTopic } from '../shared/topics.ts'
import type { PlannedDevice } from './fleet-plan.ts'
import type { Random } from './random.ts'
import type { SimStats } from './stats.ts'
import { createReadingModel, type ReadingModel, type Readings } from './telemetry-models.ts'

export interface DeviceCredentials { ca: Buffer, cert: Buffer, key: Buffer }

export interface DeviceEnvironment {
  /** Checked by parseBrokerUrls; a device starts on the one its constructor names. */
  brokers: readonly BrokerTarget[]
  intervalMs: number
  stats: SimStats
  /** Back-off after a lost or refused connection: base and cap, ms. */
  reconnectBaseMs: number
  reconnectMaxMs: number
  /** Each publish the broker acknowledged, with the payload sent. */
  onAcked?: (deviceId: string, payload: string) => void
}

type Corruption = 'not-json' | 'wrong-type' | 'missing-field'

export class SimDevice {
  readonly spec: PlannedDevice
  firmware: string
  readonly #env: DeviceEnvironment
  readonly #credentials: DeviceCredentials
  readonly #rng: Random
  readonly #model: ReadingModel
  #client: MqttClient | undefined
  #seq = 0
  #timer: NodeJS.Timeout | undefined
  #reconnectTimer: NodeJS.Timeout | undefined
  #failures = 0
  /** Index into env.brokers of the URL this device connects (or tries to connect) to. */
  #broker: number
  /** Whether the current connection reached CONNACK: its close is a drop, not a failed attempt. */
  #up = false
  /** When the established connection was lost (performance.now()), until the next CONNACK. */
  #droppedAt: number | undefined
  #stopped = false
  #silent = false
  #everConnected = false
  #onFirstConnect: (() => void) | undefined
  // Misbehaviour queued by the scenario, applied to the next publishes.
  #clockSkewMs = 0
  #corruptions: Corruption[] = []
  #implausible: 'jump' | 'backwards' | 'range' | undefined
  #replays = 0
  #lastPayload: string | undefined
  #lastReadings: Readings | undefined

  /** `broker` is the index in env.brokers of the URL to start on (taken modulo their number). */
  constructor (spec: PlannedDevice, credentials: DeviceCredentials, rng: Random, env: DeviceEnvironment, broker = 0) {
    if (env.brokers.length === 0) throw new Error('a simulated device needs at least one broker URL')
    this.spec = spec
    this.#broker = broker % env.brokers.length
    this.firmware = spec.firmware
    this.#credentials = credentials
    this.#rng = rng
    this.#env = env
    this.#model = createReadingModel(spec.kind, rng)
  }

  get connected (): boolean {
    return this.#client?.connected ?? false
  }

  /** The broker URL it is connected to, or trying next. */
  get brokerUrl (): string {
    return this.#env.brokers[this.#broker]!.url
  }

  /** Its index in env.brokers. */
  get brokerIndex (): number {
    return this.#broker
  }

  /** Lost its connection and is not connected again yet (deliberate disconnects, `silence(true)` and `stop`, excepted). */
  get awaitingReconnect (): boolean {
    return this.#droppedAt !== undefined && !this.#stopped
  }

  get topic (): string {
    return telemetryTopic(this.spec.site, this.spec.kind, this.spec.deviceId)
  }

  /**
   * Connects (and keeps reconnecting); resolves true at the first CONNACK,
   * false once an attempt on every broker URL has failed (it goes on trying).
   */
  start (): Promise<boolean> {
    const client = mqtt.connect(this.brokerUrl, {
      ...this.#credentials,
      clientId: this.spec.deviceId,
      clean: true,
      keepalive: 60,
      // PlaceGuard drives reconnection itself: mqtt.js retries every second, without jitter.
      reconnectPeriod: 0,
      connectTimeout: 30_000,
    })
    this.#client = client
    return new Promise((resolve) => {
      this.#onFirstConnect = () => resolve(true)
      client.on('connect', () => {
        this.#failures = 0
        this.#up = true
        if (!this.#everConnected) {
          this.#everConnected = true
          this.#env.stats.connected++
          this.#onFirstConnect?.()
        } else if (this.#droppedAt !== undefined) {
          this.#env.stats.reconnected(this.brokerUrl, performance.now() - this.#droppedAt)
        }
        this.#droppedAt = undefined
        if (!this.#timer && !this.#silent) this.#schedule(this.#rng.next() * this.#env.intervalMs)
      })
      client.on('error', () => { if (!this.#stopped) this.#env.stats.connectErrors++ })
      client.on('close', () => {
        if (this.#up) {
          this.#up = false
          this.#droppedAt = performance.now()
          if (!this.#stopped) this.#env.stats.dropped()
        } else if (!this.#stopped) {
          // A failed attempt: the next one goes to the next broker of the list
          // (after a drop, the first retry goes back to the same one).
          this.#broker = (this.#broker + 1) % this.#env.brokers.length
          if (!this.#everConnected && this.#failures + 1 >= this.#env.brokers.length) resolve(false)
        }
        this.#scheduleReconnect()
      })
    })
  }

  /** Stops publishing; waits (bounded) for outstanding acknowledgements, then disconnects. */
  async stop (graceMs: number): Promise<void> {
    this.#stopped = true
    clearTimeout(this.#timer)
    clearTimeout(this.#reconnectTimer)
    const deadline = Date.now() + graceMs
    while (this.#env.stats.inFlightOf(this.spec.deviceId) > 0 && Date.now() < deadline && this.connected) {
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    // force: mqtt.js would otherwise wait for every unacknowledged publish, forever if the broker is gone.
    await new Promise<void>((resolve) => this.#client ? this.#client.end(true, {}, () => resolve()) : resolve())
  }

  // --- scenario hooks -----------------------------------------------------

  silence (disconnect: boolean): void {
    this.#silent = true
    clearTimeout(this.#timer)
    this.#timer = undefined
    if (disconnect) {
      this.#stopped = true
      this.#client?.end(true)
    }
  }

  /** Publishes at `ratePerSec` for `durationMs` on top of the normal schedule. */
  burst (ratePerSec: number, durationMs: number): void {
    const until = Date.now() + durationMs
    const tick = (): void => {
      if (this.#stopped || Date.now() >= until) return
      this.#publish()
      setTimeout(tick, 1000 / ratePerSec)
    }
    tick()
  }

  /** `count` messages back to back, at once: what a compromised or broken device does in its first seconds. */
  flood (count: number): void {
    for (let i = 0; i < count && !this.#stopped; i++) this.#publish()
  }

  skewClock (offsetMs: number): void { this.#clockSkewMs = offsetMs }
  corruptNext (mode: Corruption, count: number): void { for (let i = 0; i < count; i++) this.#corruptions.push(mode) }
  implausibleNext (mode: 'jump' | 'backwards' | 'range'): void { this.#implausible = mode }
  replayNext (count: number): void { this.#replays += count }

  /** A raw publish outside the device's ACL: the broker closes the connection. */
  publishRaw (topic: string, payload: string): void {
    this.#client?.publish(topic, payload, { qos: 0 })
  }

  subscribeRaw (filter: string): void {
    this.#client?.subscribe(filter, { qos: 0 }, () => {})
  }

  /** Drops the connection as a flaky modem would; the device reconnects by its back-off. */
  flap (): void {
    (this.#client as unknown as { stream?: { destroy: () => void } } | undefined)?.stream?.destroy()
  }

  // --- publishing -----------------------------------------------------------

  #schedule (delayMs: number): void {
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      if (this.#stopped || this.#silent) return
      this.#publish()
      // ±20 % jitter keeps a fleet from marching in step.
      this.#schedule(this.#env.intervalMs * this.#rng.between(0.8, 1.2))
    }, delayMs)
  }

  #publish (): void {
    const client = this.#client
    if (!client) return
    const payload = this.#nextPayload()
    const stats = this.#env.stats
    const startedAt = performance.now()
    stats.published(this.spec.deviceId)
    client.publish(this.topic, payload, { qos: 1 }, (error) => {
      stats.settled(this.spec.deviceId, error ? undefined : performance.now() - startedAt)
      if (!error) this.#env.onAcked?.(this.spec.deviceId, payload)
    })
  }

  #nextPayload (): string {
    if (this.#replays > 0 && this.#lastPayload) {
      this.#replays--
      // An earlier seq sent again with a new ts: a replay. The very same bytes
      // again would be what a QoS 1 redelivery looks like, which detection
      // rightly absorbs (docs/policies.md, replay).
      return JSON.stringify({ ...JSON.parse(this.#lastPayload) as object, ts: Date.now() + this.#clockSkewMs })
    }
    const ts = Date.now() + this.#clockSkewMs
    let readings = this.#model.next(Date.now())
    // A jump or a meter running backwards needs a previous reading to jump from: wait for one.
    if (this.#implausible && (this.#lastReadings || this.#implausible === 'range')) {
      readings = implausible(this.spec.kind, readings, this.#lastReadings, this.#implausible)
      this.#implausible = undefined
    }
    this.#lastReadings = readings
    const message = { ts, seq: this.#seq++, fw: this.firmware, ...readings }
    const corruption = this.#corruptions.shift()
    if (corruption === 'not-json') return `{"ts":${ts},"seq":${message.seq},` // truncated
    if (corruption === 'wrong-type') return JSON.stringify({ ...message, seq: String(message.seq), fw: 42 })
    if (corruption === 'missing-field') return JSON.stringify({ ts, seq: message.seq, fw: this.firmware })
    this.#lastPayload = JSON.stringify(message)
    return this.#lastPayload
  }

  #scheduleReconnect (): void {
    if (this.#stopped || this.#reconnectTimer) return
    // Exponential back-off with full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter").
    const ceiling = Math.min(this.#env.reconnectMaxMs, this.#env.reconnectBaseMs * 2 ** this.#failures++)
    const delay = this.#rng.between(0, ceiling)
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined
      const client = this.#client
      if (this.#stopped || !client || client.connected) return
      aim(client, this.#env.brokers[this.#broker]!)
      client.reconnect()
    }, delay)
  }
}

/**
 * Points an mqtt.js client at another broker for its next connection. The
 * same client is kept (not a new one) so that publishes in flight keep their
 * callbacks. mqtt.js builds each TLS stream from `client.options`; its
 * `servers` option would rotate on every attempt, even after a good
 * connection, and keeps the first host's SNI name.
 */
function aim (client: MqttClient, target: BrokerTarget): void {
  const options = client.options as { host?: string, hostname?: string, port?: number, servername?: string }
  options.host = target.hostname
  options.hostname = target.hostname
  options.port = target.port
  // SNI and the server-certificate name check follow the host; an IP address is not sent as SNI.
  if (isIP(target.hostname) === 0) options.servername = target.hostname
  else delete options.servername
}

function implausible (kind: PlannedDevice['kind'], readings: Readings, last: Readings | undefined, mode: 'jump' | 'backwards' | 'range'): Readings {
  if (kind === 'flood') {
    // Metres in a second: no river rises like that.
    return { ...readings, level_cm: (last?.level_cm ?? readings.level_cm ?? 0) + (mode === 'range' ? 5_000 : 600) }
  }
  if (kind === 'energy') {
    return mode === 'range'
      ? { ...readings, voltage_v: 980 }
      : { ...readings, energy_kwh: Math.max(0, (last?.energy_kwh ?? readings.energy_kwh ?? 0) - 750) } // the meter runs backwards
  }
  return { ...readings, temp_c: 95, co2_ppm: mode === 'range' ? 60_000 : (readings.co2_ppm ?? 0) }
}
