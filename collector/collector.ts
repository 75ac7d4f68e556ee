/**
 * The collector's MQTT side: one persistent session (clean = false, QoS 1)
 * on its own certificate, subscribed to telemetry and to the broker's
 * security events. Each message is validated, turned into points and
 * committed to the spool in small batches; only then is it acknowledged,
 * so a message is either durable here or still held by the broker.
 */
import { readFileSync } from 'node:fs'
import { EventEmitter } from 'node:events'
import mqtt, { type MqttClient } from 'mqtt'
import type { QuarantineCommand } from '../shared/control.ts'
import type { SecurityEvent } from '../shared/security-events.ts'
import { systemClock, type Clock } from '../shared/clock.ts'
import type { Logger } from '../shared/logger.ts'
import { PROBE_CONTROL_TOPIC, QUARANTINE_CONTROL_TOPIC, SECURITY_EVENTS_FILTER } from '../shared/topics.ts'
import { BrokerProbe } from './broker-probe.ts'
import { type AckTicket, installDeferredAcks, type DeferredAcks } from './deferred-acks.ts'
import { type Decoded, decodeMessage, TELEMETRY_FILTER } from './decode.ts'
import { LORAWAN_UPLINKS_FILTER, type LorawanObservation } from '../shared/lorawan.ts'
import { EMPTY_LORAWAN_REGISTRY, type LorawanRegistry } from './lorawan.ts'
import { PlaceGuardError } from '../shared/errors.ts'
import { SpoolFullError, type TelemetrySpool } from './telemetry-spool.ts'
import type { StoredPoint } from './stored-point.ts'

/** Back-off of commit retries while the spool refuses writes. */
const BASE_RETRY_MS = 250
const MAX_RETRY_MS = 5_000
const LOG_EVERY_MS = 60_000


export interface CollectorOptions {
  brokerUrl: string
  tls: { caCert: string, cert: string, key: string }
  /** `collector` or `collector-<name>`; the persistent session is keyed by it. */
  clientId?: string
  spool: TelemetrySpool
  logger: Logger
  /** Longest a received message waits for its batch to be committed. */
  flushIntervalMs?: number
  maxBatch?: number
  /** Messages received but not yet durable before the collector stops reading. */
  maxPending?: number
  clock?: Clock
  /** Who each DevEUI belongs to, read per message (so a refreshed registry applies at once); default: nobody's. */
  lorawanRegistry?: LorawanRegistry
}

export interface CollectorMetrics {
  received: number
  telemetryStored: number
  eventsStored: number
  rejected: number
  spoolFullStalls: number
  /** Commits the spool refused for a disk error (SQLITE_FULL, I/O error); retried. */
  spoolWriteErrors: number
  /** Network server events heard through an integration (each also counted above as what it yielded, if anything). */
  lorawanEvents: number
}

/** A received message waiting for its batch; `point` is absent for one that stores nothing. */
interface Pending { ticket: AckTicket | undefined, point: StoredPoint | undefined }

export class Collector extends EventEmitter<{ 'security-event': [SecurityEvent], 'telemetry': [StoredPoint], 'lorawan': [LorawanObservation], 'spool-full': [], 'connection': [connected: boolean], 'broker-answering': [answering: boolean, waitedMs: number] }> {
  readonly metrics: CollectorMetrics = { received: 0, telemetryStored: 0, eventsStored: 0, rejected: 0, spoolFullStalls: 0, spoolWriteErrors: 0, lorawanEvents: 0 }
  readonly #options: Required<Omit<CollectorOptions, 'clientId'>> & { clientId: string }
  #client: MqttClient | undefined
  #acks: DeferredAcks | undefined
  #probe: BrokerProbe | undefined
  #pending: Pending[] = []
  /**
   * JSON bytes of the pending points, kept only while the spool refuses
   * writes (summed once when it starts refusing, then added to as messages
   * arrive): whether the backlog fits is then O(1) to know at each retry.
   * Undefined otherwise, so a healthy collector serialises nothing twice.
   */
  #pendingBytes: number | undefined
  #timer: NodeJS.Timeout | undefined
  /** mqtt.js' continuation, withheld while the backlog is at maxPending. */
  #heldRead: (() => void) | undefined
  /** Set while the spool refuses writes (full, or a disk error): commits wait for the back-off timer. */
  #stall: { since: number, failures: number, lastLoggedAt: number, suppressed: number } | undefined
  #stopped = false
  /** Called after each commit so the store writer drains at once. */
  onCommit: () => void = () => {}

  constructor (options: CollectorOptions) {
    super()
    this.#options = { clientId: 'collector', flushIntervalMs: 20, maxBatch: 1000, maxPending: 20_000, clock: systemClock, lorawanRegistry: EMPTY_LORAWAN_REGISTRY, ...options }
  }

  get connected (): boolean {
    return this.#client?.connected ?? false
  }

  /** Messages received and not yet durable (nor acknowledged); bounded by maxPending. */
  get pendingMessages (): number {
    return this.#pending.length
  }

  /** True while mqtt.js is kept from reading because the backlog is at maxPending. */
  get paused (): boolean {
    return this.#heldRead !== undefined
  }

  async start (): Promise<void> {
    const { tls, brokerUrl, clientId, logger } = this.#options
    this.#stopped = false
    const client = mqtt.connect(brokerUrl, {
      ca: readFileSync(tls.caCert), cert: readFileSync(tls.cert), key: readFileSync(tls.key),
      clientId,
      clean: false, // [MQTT-3.1.2-4] the broker keeps our subscriptions and unacknowledged messages
      reconnectPeriod: 2_000,
      connectTimeout: 30_000,
    })
    // mqtt.js' documented per-message hook: it runs before the PUBACK is sent
    // (customHandleAcks would be the natural one, but mqtt.js honours it for MQTT 5 only).
    client.handleMessage = (packet, done) => {
      this.#receive(packet.topic, packet.payload as Buffer, packet.messageId)
      // Back-pressure: past maxPending, mqtt.js gets its continuation only
      // once the spool has taken the backlog, so it reads no further. The
      // decision is taken per message, so it holds on every connection
      // (a paused socket would be replaced, unpaused, at the next reconnect).
      if (this.#pending.length >= this.#options.maxPending) this.#heldRead = done
      else done()
    }
    this.#client = client
    this.#acks = installDeferredAcks(client)
    const probe = new BrokerProbe({
      clock: this.#options.clock,
      connected: () => client.connected,
      send: (answered) => client.publish(PROBE_CONTROL_TOPIC, '', { qos: 1 }, (error) => { if (!error) answered() }),
      onChange: (answering, waitedMs) => {
        if (answering) logger.info({ waitedMs }, 'collector: the broker answers again')
        else logger.warn({ waitedMs }, 'collector: the broker does not answer; detection holds its judgement of silence')
        this.emit('broker-answering', answering, waitedMs)
      },
    })
    this.#probe = probe
    client.on('close', () => {
      probe.reset()
      this.#onConnectionLost()
    })
    client.on('error', (error) => logger.error({ err: error.message }, 'collector connection error'))
    client.on('offline', () => {
      logger.warn('collector disconnected from the broker; reconnecting')
      this.emit('connection', false)
    })
    // Detection holds its judgement of silence while the session is down and its backlog is read.
    client.on('connect', () => this.emit('connection', true))
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve())
      client.once('error', reject)
    })
    // Resubscribing is harmless with a persistent session and needed the first time.
    // LoRaWAN network servers' events arrive re-addressed by the broker, which delivers them to the collector role only.
    await client.subscribeAsync({ [TELEMETRY_FILTER]: { qos: 1 }, [SECURITY_EVENTS_FILTER]: { qos: 1 }, [LORAWAN_UPLINKS_FILTER]: { qos: 1 } })
    logger.info({ broker: brokerUrl, clientId }, 'collector subscribed')
    probe.start()
  }

  /**
   * A command to the broker (quarantine, lift) on the control topic, QoS 1:
   * resolves once the broker has acted on it (it acts before its PUBACK).
   * While disconnected, mqtt.js queues it until the session is back.
   */
  async sendCommand (command: QuarantineCommand): Promise<void> {
    if (!this.#client) throw new Error('the collector is not started')
    await this.#client.publishAsync(QUARANTINE_CONTROL_TOPIC, JSON.stringify(command), { qos: 1 })
  }

  /**
   * Commits what is pending and disconnects. Messages that arrive while
   * the connection closes are left to the broker, which redelivers them to
   * the next session.
   */
  async stop (): Promise<void> {
    this.#probe?.stop()
    this.#flush()
    await new Promise<void>((resolve) => this.#client ? this.#client.end(false, {}, () => resolve()) : resolve())
    this.#flush()
    // A spool that still refuses writes is not retried after stop (the caller closes it next).
    this.#stopped = true
    clearTimeout(this.#timer)
    this.#timer = undefined
  }

  #receive (topic: string, payload: Buffer, messageId: number | undefined): void {
    this.metrics.received++
    const decoded = decodeMessage(topic, payload, this.#options.clock.now(), this.#options.lorawanRegistry)
    this.#handle(decoded, topic, messageId)
  }

  #handle (decoded: Decoded, topic: string, messageId: number | undefined): void {
    switch (decoded.kind) {
      case 'telemetry':
        this.emit('telemetry', decoded.point)
        this.metrics.telemetryStored++
        return this.#queue(messageId, decoded.point)
      case 'event':
        this.emit('security-event', decoded.event)
        this.metrics.eventsStored++
        return this.#queue(messageId, decoded.point)
      case 'rejected':
        // An invalid payload is not telemetry; it is stored as a `payload-invalid` security event, then acked.
        this.metrics.rejected++
        this.emit('security-event', decoded.event)
        return this.#queue(messageId, decoded.point)
      case 'unreadable':
        this.#options.logger.warn({ topic }, 'unreadable security event from the broker')
        return this.#queue(messageId, undefined)
      case 'lorawan':
        this.metrics.lorawanEvents++
        this.emit('lorawan', decoded.observation)
        // A registered device's reading (or its refusal) goes the way of any device's; anything else stores nothing.
        return decoded.then ? this.#handle(decoded.then, topic, messageId) : this.#queue(messageId, undefined)
    }
  }

  #queue (messageId: number | undefined, point: StoredPoint | undefined): void {
    // Even a message that stores nothing waits its turn: PUBACKs go out in arrival order [MQTT-4.6.0-2].
    const ticket = messageId === undefined || !this.#acks ? undefined : { messageId, connection: this.#acks.connection }
    this.#pending.push({ ticket, point })
    if (point && this.#pendingBytes !== undefined) this.#pendingBytes += jsonBytes(point)
    // While the spool refuses writes only the back-off timer retries: a
    // commit attempt per message would cost O(backlog) each time.
    if (this.#stall) {
      if (!this.#stopped) this.#timer ??= setTimeout(() => this.#flush(), BASE_RETRY_MS)
      return
    }
    if (this.#pending.length >= this.#options.maxBatch) this.#flush()
    else this.#timer ??= setTimeout(() => this.#flush(), this.#options.flushIntervalMs)
  }

  /**
   * The connection died: messages not yet durable will be redelivered by
   * the broker to the next session [MQTT-4.4.0-1] and their tickets are
   * void, so they leave the backlog now instead of being stored twice.
   * The withheld read belonged to the dead socket; the new one is gated
   * afresh by the next message.
   */
  #onConnectionLost (): void {
    this.#heldRead = undefined
    this.#pending = this.#pending.filter((entry) => entry.ticket === undefined)
    if (this.#pendingBytes !== undefined) this.#pendingBytes = pendingBytesOf(this.#pending)
  }

  #flush (): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
    if (this.#pending.length === 0) return
    const batch = this.#pending
    const { spool } = this.#options
    try {
      // While the backlog plainly does not fit, say so without serialising it all again.
      if (this.#stall && this.#pendingBytes !== undefined && spool.bytes + this.#pendingBytes > spool.maxBytes) throw new SpoolFullError(`spool full: ${spool.bytes} of ${spool.maxBytes} bytes used, ${this.#pendingBytes} waiting`)
      spool.append(batch.flatMap((entry) => entry.point ? [entry.point] : []))
    } catch (error) {
      // Nothing is dropped and nothing thrown (a throw from a timer would
      // kill the process, and under `up` the broker with it): the messages
      // stay unacknowledged, the broker keeps them, and past maxPending the
      // collector stops reading until the spool takes them.
      this.#stalled(error)
      return
    }
    this.#pending = []
    this.#pendingBytes = undefined
    if (this.#stall) {
      this.#options.logger.info({ stalledMs: this.#options.clock.now() - this.#stall.since, attempts: this.#stall.failures }, 'collector: the spool takes messages again')
      this.#stall = undefined
    }
    this.#acks?.release(batch.flatMap((entry) => entry.ticket ? [entry.ticket] : []))
    const read = this.#heldRead
    this.#heldRead = undefined
    read?.()
    this.onCommit()
  }

  #stalled (error: unknown): void {
    const now = this.#options.clock.now()
    const stall = this.#stall ??= { since: now, failures: 0, lastLoggedAt: 0, suppressed: 0 }
    this.#pendingBytes ??= pendingBytesOf(this.#pending)
    stall.failures++
    if (error instanceof SpoolFullError) {
      this.metrics.spoolFullStalls++
      this.emit('spool-full')
    } else {
      this.metrics.spoolWriteErrors++
      // One clear line per minute at most: a full disk retried every few seconds must not fill the log too.
      if (now - stall.lastLoggedAt >= LOG_EVERY_MS) {
        const { code, message } = error instanceof PlaceGuardError ? error : { code: 'PG_ERR_SPOOL_UNWRITABLE', message: String((error as Error).message ?? error) }
        this.#options.logger.error({ code, spool: this.#options.spool.path, pending: this.#pending.length, suppressed: stall.suppressed },
          `collector: ${message}; messages stay unacknowledged at the broker, retrying`)
        stall.lastLoggedAt = now
        stall.suppressed = 0
      } else {
        stall.suppressed++
      }
    }
    if (!this.#stopped) this.#timer = setTimeout(() => this.#flush(), Math.min(MAX_RETRY_MS, BASE_RETRY_MS * 2 ** (stall.failures - 1)))
  }
}

function jsonBytes (point: StoredPoint): number {
  return Buffer.byteLength(JSON.stringify(point))
}

function pendingBytesOf (pending: Pending[]): number {
  return pending.reduce((sum, entry) => sum + (entry.point ? jsonBytes(entry.point) : 0), 0)
}
