/**
 * Cluster mode's ingest: entries read from the Redis Streams (the cluster
 * room's StreamReader) are decoded like MQTT messages, heard by detection,
 * and offered to the store writer as if from a spool. `take` resolves only
 * once the store has confirmed every point of its entries (or set aside the
 * ones it refuses for good), and only then does the reader acknowledge them:
 * the stream, not this process, holds what is not yet stored. A collector
 * killed mid-batch leaves its entries pending in Redis; nothing here needs
 * a disk.
 *
 * Memory is bounded by the reader: it takes one batch per call and reads no
 * further until `take` resolves.
 */
import { EventEmitter } from 'node:events'
import { systemClock, type Clock } from '../shared/clock.ts'
import type { Logger } from '../shared/logger.ts'
import type { SecurityEvent } from '../shared/security-events.ts'
import { type Decoded, decodeMessage } from './decode.ts'
import type { LorawanObservation } from '../shared/lorawan.ts'
import { EMPTY_LORAWAN_REGISTRY, type LorawanRegistry } from './lorawan.ts'
import type { SpoolBatch } from './spool.ts'
import type { StoredPoint } from './stored-point.ts'
import { fnv1a } from '../shared/fnv1a.ts'

export interface IngestEntry {
  /** Unique and stable across redeliveries (partition and stream id). */
  key: string
  topic: string
  payload: Buffer
}

export interface StreamSpoolOptions {
  logger: Logger
  clock?: Clock
  /** Keeps points the store refused for good (a dead-letter list); resolves once they are kept. */
  setAside: (rejected: Array<{ point: StoredPoint, reason: string }>) => Promise<void>
  /** Called when points are waiting, so the writer drains at once. */
  onPoints?: () => void
  /** Who each DevEUI belongs to, read per entry; default: nobody's. */
  lorawanRegistry?: LorawanRegistry
}

interface Waiter { lastId: number, resolve: () => void, reject: (error: Error) => void }

export class StreamSpool extends EventEmitter<{ 'security-event': [SecurityEvent], 'telemetry': [StoredPoint], 'lorawan': [LorawanObservation] }> {
  readonly #options: StreamSpoolOptions & { clock: Clock }
  #points: Array<{ id: number, point: StoredPoint }> = []
  #nextId = 1
  #waiters: Waiter[] = []
  #setAside: Promise<void> = Promise.resolve()
  readonly metrics = { received: 0, telemetryStored: 0, eventsStored: 0, rejected: 0, lorawanEvents: 0 }

  constructor (options: StreamSpoolOptions) {
    super()
    this.#options = { clock: systemClock, ...options }
  }

  /** Points waiting for the store. */
  get pendingPoints (): number {
    return this.#points.length
  }

  /** Decodes the entries, tells detection, and resolves once the store holds their points. */
  take (entries: IngestEntry[]): Promise<void> {
    const now = this.#options.clock.now()
    for (const entry of entries) {
      this.metrics.received++
      let decoded: Decoded | undefined = decodeMessage(entry.topic, entry.payload, now, this.#options.lorawanRegistry ?? EMPTY_LORAWAN_REGISTRY)
      if (decoded.kind === 'unreadable') {
        this.#options.logger.warn({ topic: entry.topic, entry: entry.key }, 'unreadable security event in the cluster stream')
        continue
      }
      if (decoded.kind === 'lorawan') {
        this.metrics.lorawanEvents++
        this.emit('lorawan', decoded.observation)
        // A registered device's reading (or its refusal) is handled below like any device's; anything else stores nothing.
        decoded = decoded.then
        if (!decoded) continue
      }
      if (decoded.kind === 'telemetry') {
        this.metrics.telemetryStored++
        this.emit('telemetry', decoded.point)
      } else {
        if (decoded.kind === 'rejected') this.metrics.rejected++
        else this.metrics.eventsStored++
        // The entry's key, not an arrival counter, picks the event's nanosecond: a redelivered entry rewrites the same point.
        decoded.point.ordinalNs = ordinalOf(entry.key)
        this.emit('security-event', decoded.event)
      }
      this.#points.push({ id: this.#nextId++, point: decoded.point })
    }
    const lastId = this.#nextId - 1
    if (this.#points.length === 0 || this.#points[0]!.id > lastId) return this.#setAside
    return new Promise<void>((resolve, reject) => {
      this.#waiters.push({ lastId, resolve, reject })
      this.#options.onPoints?.()
    })
  }

  /** The store writer's view: the oldest points, without removing them. */
  peek (maxPoints: number): SpoolBatch | undefined {
    if (this.#points.length === 0) return undefined
    const points = this.#points.slice(0, maxPoints)
    return { uptoId: points.at(-1)!.id, points: points.map((p) => p.point) }
  }

  /** The store holds every point up to `uptoId` (the rejected ones set aside): their entries may be acknowledged. */
  remove (uptoId: number, rejected: Array<{ point: StoredPoint, reason: string }> = []): void {
    let drop = 0
    while (drop < this.#points.length && this.#points[drop]!.id <= uptoId) drop++
    this.#points = this.#points.slice(drop)
    // In order: a later batch's acknowledgement waits for an earlier batch's dead letters.
    const settled = rejected.length > 0 ? this.#setAside.then(() => this.#options.setAside(rejected)) : this.#setAside
    // A failure fails these batches (they are read again), not every later one.
    this.#setAside = settled.catch(() => undefined)
    const done = this.#waiters.filter((waiter) => waiter.lastId <= uptoId)
    this.#waiters = this.#waiters.filter((waiter) => waiter.lastId > uptoId)
    for (const waiter of done) settled.then(waiter.resolve, waiter.reject)
  }

  /** Gives up on what is waiting (the collector stops): the entries stay pending in the stream and are read again. */
  abandon (reason: string): void {
    this.#points = []
    for (const waiter of this.#waiters) waiter.reject(new Error(reason))
    this.#waiters = []
  }
}

/** A stable nanosecond (0–999,999) for an event point, from its stream entry. */
function ordinalOf (key: string): number {
  return fnv1a(key) % 1_000_000
}
