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
import { z } from 'zod'
import type { QuarantineCommand, SecurityEvent } from '../broker/index.ts'
import { isDeviceKind } from '../shared/ids.ts'
import type { Logger } from '../shared/logger.ts'
import { QUARANTINE_CONTROL_TOPIC, SECURITY_EVENTS_FILTER, SECURITY_EVENTS_PREFIX } from '../shared/topics.ts'
import { type AckTicket, installDeferredAcks, type DeferredAcks } from './deferred-acks.ts'
import { parseTelemetry } from './payload-schema.ts'
import { securityEventPoint, telemetryPoint } from './points.ts'
import { SpoolFullError, type Spool } from './spool.ts'
import type { StoredPoint } from './stored-point.ts'

export const TELEMETRY_FILTER = 'places/+/+/+/telemetry'
const TELEMETRY_TOPIC = /^places\/([a-z0-9-]{1,64})\/([a-z]+)\/([a-z0-9-]{1,64})\/telemetry$/

const eventSchema = z.looseObject({ type: z.string(), at: z.string(), reason: z.string() })

export interface CollectorOptions {
  brokerUrl: string
  tls: { caCert: string, cert: string, key: string }
  /** `collector` or `collector-<name>`; the persistent session is keyed by it. */
  clientId?: string
  spool: Spool
  logger: Logger
  /** Longest a received message waits for its batch to be committed. */
  flushIntervalMs?: number
  maxBatch?: number
  /** Messages received but not yet durable before the collector stops reading. */
  maxPending?: number
}

export interface CollectorMetrics {
  received: number
  telemetryStored: number
  eventsStored: number
  rejected: number
  spoolFullStalls: number
}

/** A received message waiting for its batch; `point` is absent for one that stores nothing. */
interface Pending { ticket: AckTicket | undefined, point: StoredPoint | undefined }

export class Collector extends EventEmitter<{ 'security-event': [SecurityEvent], 'telemetry': [StoredPoint], 'spool-full': [], 'connection': [connected: boolean] }> {
  readonly metrics: CollectorMetrics = { received: 0, telemetryStored: 0, eventsStored: 0, rejected: 0, spoolFullStalls: 0 }
  readonly #options: Required<Omit<CollectorOptions, 'clientId'>> & { clientId: string }
  #client: MqttClient | undefined
  #acks: DeferredAcks | undefined
  #pending: Pending[] = []
  #timer: NodeJS.Timeout | undefined
  #paused = false
  /** Called after each commit so the store writer drains at once. */
  onCommit: () => void = () => {}

  constructor (options: CollectorOptions) {
    super()
    this.#options = { clientId: 'collector', flushIntervalMs: 20, maxBatch: 1000, maxPending: 20_000, ...options }
  }

  get connected (): boolean {
    return this.#client?.connected ?? false
  }

  async start (): Promise<void> {
    const { tls, brokerUrl, clientId, logger } = this.#options
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
      done()
    }
    this.#client = client
    this.#acks = installDeferredAcks(client)
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
    await client.subscribeAsync({ [TELEMETRY_FILTER]: { qos: 1 }, [SECURITY_EVENTS_FILTER]: { qos: 1 } })
    logger.info({ broker: brokerUrl, clientId }, 'collector subscribed')
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
   * the connection closes are committed too; their PUBACKs may not reach
   * the broker, which then redelivers them to the next session (the store
   * treats the rewrite as the same point).
   */
  async stop (): Promise<void> {
    this.#flush()
    await new Promise<void>((resolve) => this.#client ? this.#client.end(false, {}, () => resolve()) : resolve())
    this.#flush()
  }

  #receive (topic: string, payload: Buffer, messageId: number | undefined): void {
    this.metrics.received++
    if (topic.startsWith(SECURITY_EVENTS_PREFIX)) {
      const event = parseEvent(payload)
      if (event) {
        this.emit('security-event', event)
        this.#queue(messageId, securityEventPoint(event))
        this.metrics.eventsStored++
      } else {
        this.#options.logger.warn({ topic }, 'unreadable security event from the broker')
        this.#queue(messageId, undefined)
      }
      return
    }
    const match = TELEMETRY_TOPIC.exec(topic)
    const kind = match?.[2]
    if (!match || !kind || !isDeviceKind(kind)) {
      this.#reject(messageId, topic, undefined, undefined, `topic ${topic} is not places/<site>/<kind>/<device>/telemetry`)
      return
    }
    const [, site, , deviceId] = match as unknown as [string, string, string, string]
    const parsed = parseTelemetry(kind, payload)
    if (!parsed.ok) {
      this.#reject(messageId, topic, deviceId, { site, kind }, parsed.reason)
      return
    }
    const point = telemetryPoint(kind, site, deviceId, parsed.telemetry)
    this.emit('telemetry', point)
    this.#queue(messageId, point)
    this.metrics.telemetryStored++
  }

  /** An invalid payload is not telemetry; it becomes a `payload-invalid` security event (stored, then acked). */
  #reject (messageId: number | undefined, topic: string, deviceId: string | undefined, where: { site: string, kind: string } | undefined, reason: string): void {
    this.metrics.rejected++
    const event: SecurityEvent = { type: 'payload-invalid', at: new Date().toISOString(), reason: `invalid telemetry: ${reason}`, topic, ...(deviceId ? { deviceId } : {}), ...where }
    this.emit('security-event', event)
    this.#queue(messageId, securityEventPoint(event))
  }

  #queue (messageId: number | undefined, point: StoredPoint | undefined): void {
    // Even a message that stores nothing waits its turn: PUBACKs go out in arrival order [MQTT-4.6.0-2].
    const ticket = messageId === undefined || !this.#acks ? undefined : { messageId, connection: this.#acks.connection }
    this.#pending.push({ ticket, point })
    if (this.#pending.length >= this.#options.maxBatch) this.#flush()
    else this.#timer ??= setTimeout(() => this.#flush(), this.#options.flushIntervalMs)
  }

  #flush (): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
    if (this.#pending.length === 0) return
    const batch = this.#pending
    try {
      this.#options.spool.append(batch.flatMap((entry) => entry.point ? [entry.point] : []))
    } catch (error) {
      if (!(error instanceof SpoolFullError)) throw error
      // Nothing is dropped: the messages stay unacknowledged (the broker keeps
      // them) and, past maxPending, the collector stops reading until the store drains.
      this.metrics.spoolFullStalls++
      this.emit('spool-full')
      if (this.#pending.length >= this.#options.maxPending && !this.#paused) {
        this.#paused = true
        this.#client?.stream.pause()
      }
      this.#timer = setTimeout(() => this.#flush(), 1_000)
      return
    }
    this.#pending = []
    this.#acks?.release(batch.flatMap((entry) => entry.ticket ? [entry.ticket] : []))
    if (this.#paused) {
      this.#paused = false
      this.#client?.stream.resume()
    }
    this.onCommit()
  }
}

function parseEvent (payload: Buffer): SecurityEvent | undefined {
  try {
    const result = eventSchema.safeParse(JSON.parse(payload.toString('utf8')))
    return result.success ? result.data as unknown as SecurityEvent : undefined
  } catch {
    return undefined
  }
}
