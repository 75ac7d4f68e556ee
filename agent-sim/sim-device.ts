/**
 * One simulated device: its own certificate and TLS session, QoS 1
 * telemetry at a jittered interval with a per-device `seq`, reconnection
 * with exponential back-off and full jitter (no thundering herd after a
 * broker restart) offering the TLS session ticket of its last connection,
 * moving to the next broker URL of its list after each failed attempt, and
 * the hooks the scenario uses to make it misbehave.
 */
import { isIP } from 'node:net'
import { createSecureContext, type SecureContext, type TLSSocket } from 'node:tls'
import mqtt, { type MqttClient } from 'mqtt'
import { reconnectDelayMs } from './backoff.ts'
import type { BrokerTarget } from './broker-urls.ts'
import { telemetryTopic } from '../shared/topics.ts'
import type { PlannedDevice } from './fleet-plan.ts'
import type { Random } from './random.ts'
import type { SimStats } from './stats.ts'
import { createReadingModel, type ReadingModel, type Readings } from './telemetry-models.ts'

export interface DeviceCredentials {
  ca: Buffer
  cert: Buffer
  key: Buffer
  /** The address its connections come from (benches give each device a loopback address of its own, as a fleet has). */
  localAddress?: string
}

export interface DeviceEnvironment {
  /** Checked by parseBrokerUrls; a device starts on the one its constructor names. */
  brokers: readonly BrokerTarget[]
  intervalMs: number
  stats: SimStats
  /** Back-off after a lost or refused connection: base and cap, ms. */
  reconnectBaseMs: number
  reconnectMaxMs: number
  /** Offer the last connection's TLS session ticket when reconnecting (default true; false: a full handshake every time). */
  tlsResumption?: boolean
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
  /** The latest TLS session ticket the broker sent, offered at the next connection. */
  #tlsSession: Buffer | undefined
  /** The TLS stream whose handshake and tickets are being watched. */
  #tlsStream: TLSSocket | undefined
  /** Built once: a reconnect should not parse the key and certificates again, as firmware would not. */
  #secureContext: SecureContext | undefined
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
  /** Until when its link is down (outage): no reconnect before. */
  #offlineUntil = 0
  #everConnected = false
  #onFirstConnect: (() => void) | undefined
  // Misbehaviour queued by the scenario, applied to the next publishes.
  #clockSkewMs = 0
  #corruptions: Corruption[] = []
  #implausible: 'jump' | 'backwards' | 'range' | undefined
  #replays = 0
  /** Connections left on which to send one packet that is not MQTT (`malformedNext`). */
  #malformedLeft = 0
  #lastPayload: string | undefined
  #lastReadings: Readings | undefined
  /** A downgrade's firmware, reported once a message on the current firmware has been acknowledged. */
  #downgradeTo: string | undefined
  #ackedOnce = false

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
    this.#secureContext ??= createSecureContext({ ca: this.#credentials.ca, cert: this.#credentials.cert, key: this.#credentials.key })
    const client = mqtt.connect(this.brokerUrl, {
      ...this.#credentials,
      // Passed on to tls.connect like the rest of the options (mqtt.js does not type it).
      ...{ secureContext: this.#secureContext },
      clientId: this.spec.deviceId,
      clean: true,
      keepalive: 60,
      // PlaceGuard drives reconnection itself: mqtt.js retries every second, without jitter.
      reconnectPeriod: 0,
      connectTimeout: 30_000,
    })
    this.#client = client
    this.#watchTls()
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
        if (this.#malformedLeft > 0) this.#sendMalformed()
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

  /**
   * Its link goes down for `durationMs` (a mast, a router, a mobile network
   * down). It goes on taking readings on its schedule; its MQTT client keeps
   * them (QoS 1) and sends them all once it is connected again, as a real
   * device's does.
   */
  outage (durationMs: number): void {
    this.#offlineUntil = Date.now() + durationMs
    this.#client?.stream.destroy()
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
  /**
   * Sends a packet that does not parse as MQTT, on this connection and the
   * next `count - 1`: the broker closes the connection at each (it reads
   * nothing past a malformed packet) and the device reconnects by its back-off.
   */
  malformedNext (count: number): void {
    this.#malformedLeft = count
    if (this.connected) this.#sendMalformed()
  }

  #sendMalformed (): void {
    this.#malformedLeft--
    // A PUBLISH to its own topic at QoS 3, which MQTT does not have [MQTT-3.3.1-4]: what firmware
    // that corrupts its frames, or a fuzzer holding the device's key, would send.
    const topic = Buffer.from(this.topic)
    const body = Buffer.concat([Buffer.from([topic.length >> 8, topic.length & 0xff]), topic, Buffer.from([0x00, 0x01]), Buffer.from('{}')])
    const length: number[] = []
    for (let left = body.length; ; left = Math.floor(left / 128)) {
      length.push(left >= 128 ? (left % 128) | 0x80 : left)
      if (left < 128) break
    }
    ;(this.#client?.stream as TLSSocket | undefined)?.write(Buffer.concat([Buffer.from([0x36, ...length]), body]))
  }
  /**
   * Reports `fw` from the next message on, but only after the broker has acknowledged one on the firmware it runs now:
   * a downgrade is a lower version than the previous message's, so a device that has not published yet (still
   * connecting on a slow start) must not make its downgraded message its first.
   */
  downgradeNext (fw: string): void {
    this.#downgradeTo = fw
  }

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
      if (error) return
      this.#ackedOnce = true
      this.#env.onAcked?.(this.spec.deviceId, payload)
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
    if (this.#downgradeTo !== undefined && this.#ackedOnce) {
      this.firmware = this.#downgradeTo
      this.#downgradeTo = undefined
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
    const delay = Math.max(reconnectDelayMs(this.#failures++, { baseMs: this.#env.reconnectBaseMs, maxMs: this.#env.reconnectMaxMs }, this.#rng.next()),
      this.#offlineUntil - Date.now())
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined
      const client = this.#client
      if (this.#stopped || !client || client.connected) return
      aim(client, this.#env.brokers[this.#broker]!)
      // mqtt.js hands client.options to tls.connect: the ticket rides along.
      // A broker that cannot decrypt it (another node's keys, a ticket past
      // its lifetime) answers with a full handshake, never a refusal.
      const options = client.options as { session?: Buffer }
      if (this.#tlsSession && this.#env.tlsResumption !== false) options.session = this.#tlsSession
      else delete options.session
      // mqtt.js' reconnect() starts empty stores unless handed the current
      // ones: every publish not yet acknowledged, or queued while the link
      // was down, would be dropped without its callback. Kept, they are sent
      // again after the CONNACK, as a real device's client does.
      client.reconnect({ incomingStore: client.incomingStore, outgoingStore: client.outgoingStore })
      this.#watchTls()
    }, delay)
  }

  /**
   * Watches the TLS stream mqtt.js has just built (synchronously, in
   * connect or reconnect, so before any byte arrives): counts its handshake
   * as full or resumed, and keeps the latest ticket. OpenSSL sends no new
   * ticket on a resumed session, so the one in hand is kept until one comes.
   */
  #watchTls (): void {
    const stream = this.#client?.stream as TLSSocket | undefined
    if (!stream || stream === this.#tlsStream || typeof stream.isSessionReused !== 'function') return
    this.#tlsStream = stream
    stream.once('secureConnect', () => this.#env.stats.handshake(stream.isSessionReused()))
    stream.on('session', (session: Buffer) => { this.#tlsSession = session })
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
