/**
 * The durable outbox: every alert change routed to a sink is written to
 * the outbox store (outbox-store.ts; by default SQLite at
 * `<data-dir>/outbox.db`, synchronous = FULL) before anything is sent, and
 * deleted only once the sink confirms. So delivery is
 * at-least-once across crashes and restarts, with the same delivery id on
 * every retry (receivers deduplicate on `webhook-id`).
 *
 * One worker per sink sends in order (an alert's `resolved` never
 * overtakes its `opened`), at most `ratePerSec`, and coalesces a backlog
 * into batches of `maxBatch` for channels that take several alerts per
 * message. A failed attempt is retried with exponential back-off and full
 * jitter, or after the sink's Retry-After. A sink still failing
 * `deadLetterAfterMs` after a delivery was queued moves that sink's
 * overdue deliveries to the dead-letter list (kept, visible, re-queueable)
 * and reports the outage once; a delivery the channel refuses for good
 * (HTTP 400) goes there at once.
 */
import { createHash } from 'node:crypto'
import { type Clock, systemClock } from '../shared/clock.ts'
import type { Logger } from '../shared/logger.ts'
import { type Alert, type AlertChange, SEVERITIES, type Severity } from '../shared/alert-contract.ts'
import type { AsyncOutboxStore, DeadLetter, NewAuditDelivery, NewDelivery, OutboxStore, QueuedDelivery } from './outbox-store.ts'
import { type AuditDelivery, type AuditRecord, DELIVERED_CHANGES, type DeliveredChange, type Delivery, type DeliveryResult, type Sink } from './sink.ts'
import { SqliteOutboxStore } from './sqlite-outbox-store.ts'

export type { DeadLetter }

/** Either kind of store: synchronous (SQLite, one collector) or asynchronous (PostgreSQL, a collector group). */
export type AnyOutboxStore = OutboxStore | AsyncOutboxStore

/**
 * What an outbox method answers over store `S`: the value itself over a
 * synchronous store (done and durable on return, as before), a Promise of
 * it over an asynchronous one.
 */
export type OutboxAnswer<S extends AnyOutboxStore, T> = S extends OutboxStore ? T : Promise<T>

/** Which alerts a sink receives. */
export interface Route {
  minSeverity: Severity
  /** Absent: every policy (system alerts included). */
  policies?: readonly string[]
  /** Also every entry of the operator audit trail (a sink that can send them: syslog, `takesAuditTrail`). Default no. */
  audit?: boolean
}

export interface OutboxSink { sink: Sink, route: Route }

export interface OutboxOptions<S extends AnyOutboxStore = OutboxStore> {
  /**
   * Where the deliveries are kept; when absent, a SQLite store at `path`.
   * The outbox closes it at `stop`. Its kind types the outbox's answers
   * (OutboxAnswer): an AsyncOutboxStore (PgOutboxStore) makes `enqueue`,
   * `metrics`, `deadLetters` and `requeueDeadLetters` answer Promises.
   */
  store?: S
  /** The SQLite file of the default store (`:memory:` for none); required without `store`. */
  path?: string
  sinks: OutboxSink[]
  deadLetterAfterMs: number
  logger: Logger
  clock?: Clock
  /** First retry delay; doubles per attempt up to `maxBackoffMs`. */
  baseBackoffMs?: number
  maxBackoffMs?: number
  /** A sink started failing for longer than `deadLetterAfterMs` / works again. */
  onSinkFailing?: (sink: Sink, detail: { since: string, lastError: string, deadLettered: number }) => void
  onSinkRecovered?: (sink: Sink) => void
}

export interface SinkMetrics {
  sink: string
  type: string
  pending: number
  deadLettered: number
  delivered: number
  attempts: number
  retries: number
  failures: number
  /** Seconds from the alert change to the sink's confirmation, of the last 1,000 deliveries. */
  latencyP50Ms: number | undefined
  latencyP99Ms: number | undefined
  failingSince: string | null
}

/** How long a sink's last confirmed change of an alert is remembered (against dead letters requeued later). */
const MARK_RETENTION_MS = 30 * 86_400_000
const MARK_PRUNE_EVERY_MS = 3_600_000

const LATENCY_SAMPLES = 1_000
/**
 * How often an idle worker looks at its queue. Also how soon it notices
 * work queued by another collector of the group, or a sink another
 * collector held being let go.
 */
const IDLE_POLL_MS = 1_000

class SinkWorker {
  delivered = 0
  attempts = 0
  retries = 0
  failures = 0
  failingSinceMs: number | undefined
  reportedFailing = false
  lastError = ''
  readonly latencies: number[] = []
  running: Promise<void> | undefined
  #wake: (() => void) | undefined
  #lastSendMs = 0
  /** Store calls failed in a row (an outage of a shared store): the worker backs off on them. */
  storeFailures = 0

  readonly entry: OutboxSink

  constructor (entry: OutboxSink) {
    this.entry = entry
  }

  kick (): void {
    this.#wake?.()
  }

  /** Sleeps until `ms` passes or a kick, whichever comes first. */
  sleep (ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms)
      function done (): void {
        clearTimeout(timer)
        resolve()
      }
      this.#wake = done
    })
  }

  /** How long to wait before the next send so the sink's rate holds. */
  rateDelay (nowMs: number): number {
    const rate = this.entry.sink.ratePerSec
    return rate ? Math.max(0, this.#lastSendMs + 1000 / rate - nowMs) : 0
  }

  markSent (nowMs: number): void {
    this.#lastSendMs = nowMs
  }

  recordLatency (ms: number): void {
    this.latencies.push(ms)
    if (this.latencies.length > LATENCY_SAMPLES) this.latencies.shift()
  }
}

export class Outbox<S extends AnyOutboxStore = OutboxStore> {
  readonly #store: AnyOutboxStore
  readonly #options: OutboxOptions<S>
  readonly #clock: Clock
  readonly #workers = new Map<string, SinkWorker>()
  #marksPrunedAtMs = -Infinity
  #superseded = 0
  #stopped = true
  /** The store answers Promises (learnt at construction: see `add` in outbox-store.ts). */
  readonly #async: boolean

  constructor (options: OutboxOptions<S>) {
    this.#options = options
    this.#clock = options.clock ?? systemClock
    if (!options.store && options.path === undefined) throw new TypeError('an outbox needs a store or a path')
    this.#store = options.store ?? new SqliteOutboxStore({ path: options.path! })
    // Which kind of store this is, for the answers that need no store call (a change no sink takes).
    const probe = this.#store.add([])
    this.#async = probe instanceof Promise
    if (probe instanceof Promise) probe.catch(() => {})
    const names = new Set<string>()
    for (const entry of options.sinks) {
      if (names.has(entry.sink.name)) throw new Error(`two sinks are named "${entry.sink.name}"`)
      names.add(entry.sink.name)
      this.#workers.set(entry.sink.name, new SinkWorker(entry))
    }
  }

  get sinkNames (): string[] {
    return [...this.#workers.keys()]
  }

  /**
   * Queues an alert change for every sink whose route takes it. Answers
   * how many deliveries were queued: over a synchronous store, durable on
   * return (a failed write throws); over an asynchronous one, a Promise
   * that resolves once the change is durable and rejects when the store
   * could not take it (an outage) — then nothing was queued, and the
   * caller keeps the change and enqueues it again.
   *
   * A delivery's id is derived from the change (deliveryId), so enqueueing
   * the same change again, here or on another collector of the group,
   * queues nothing twice (the store skips ids it holds). With
   * `unlessDelivered`, sinks that confirmed any change of the alert are
   * skipped (outbox-store.ts).
   */
  enqueue ({ change, alert }: AlertChange, options: { unlessDelivered?: boolean } = {}): OutboxAnswer<S, number> {
    if (!isDelivered(change)) return this.#answer(0)
    const now = this.#clock.now()
    const deliveries: NewDelivery[] = [...this.#workers.values()].filter((worker) => routes(worker.entry.route, alert))
      .map((worker) => ({ id: deliveryId(worker.entry.sink.name, change, alert.id), sink: worker.entry.sink.name, alertId: alert.id, change, alert, createdAtMs: now }))
    return this.#then(this.#store.add(deliveries, options), () => {
      for (const worker of this.#workers.values()) worker.kick()
      return deliveries.length
    })
  }

  /**
   * Queues an entry of the operator audit trail for every sink whose route
   * takes the trail, as `enqueue` queues an alert change: durable on
   * return over a synchronous store, a Promise over an asynchronous one.
   * The delivery id comes from the entry's hash, so queueing it again
   * (here, or by the CLI that wrote it; a supplier's command reported
   * twice answers the entry recorded the first time) queues nothing twice,
   * nor anything a sink already confirmed (its mark, kept 30 days).
   */
  enqueueAudit (entry: AuditRecord): OutboxAnswer<S, number> {
    const now = this.#clock.now()
    const deliveries = [...this.#workers.values()].filter((worker) => worker.entry.route.audit === true && worker.entry.sink.sendAudit !== undefined)
      .map((worker) => auditDelivery(worker.entry.sink.name, entry, now))
    return this.#then(this.#store.add(deliveries, { unlessDelivered: true }), () => {
      for (const worker of this.#workers.values()) worker.kick()
      return deliveries.length
    })
  }

  start (): void {
    if (!this.#stopped) return
    this.#stopped = false
    for (const worker of this.#workers.values()) worker.running = this.#run(worker)
  }

  /** Stops sending (an attempt in flight finishes) and closes the sinks and the store. */
  async stop (): Promise<void> {
    this.#stopped = true
    for (const worker of this.#workers.values()) worker.kick()
    await Promise.all([...this.#workers.values()].map((worker) => worker.running))
    await Promise.all([...this.#workers.values()].map((worker) => worker.entry.sink.close()))
    await this.#store.close()
  }

  deadLetters (sink?: string): OutboxAnswer<S, DeadLetter[]> {
    return this.#then(this.#store.deadLetters(sink), (letters) => letters)
  }

  /**
   * Puts dead letters back in the queue (all, or one sink's), keeping their
   * ids and their order. Answers how many.
   *
   * A dead letter whose alert has a newer change that the sink already
   * confirmed, or that is still queued for it, is superseded: it is deleted,
   * counted and logged, not sent. Sent after that newer change it would
   * tell the SOC a resolved alert is open again (PagerDuty would re-trigger
   * the incident). Skipping loses nothing: every change carries the whole
   * alert, so the newer one already told the SOC all the stale one would.
   */
  requeueDeadLetters (sink?: string): OutboxAnswer<S, number> {
    return this.#then(this.#store.requeueDeadLetters(sink, this.#clock.now()), ({ requeued, superseded: skipped }) => {
      if (skipped.length > 0) {
        this.#superseded += skipped.length
        this.#options.logger.info({ superseded: skipped }, 'dead letters superseded by a newer change of their alert; not sent')
      }
      for (const worker of this.#workers.values()) worker.kick()
      return requeued
    })
  }

  /** Dead letters dropped at requeue because a newer change of their alert had been delivered or queued. */
  get supersededDeadLetters (): number {
    return this.#superseded
  }

  metrics (): OutboxAnswer<S, SinkMetrics[]> {
    return this.#then(this.#store.sizes(), (sizes) => [...this.#workers.values()].map((worker) => {
      const sorted = [...worker.latencies].sort((a, b) => a - b)
      const at = (q: number) => sorted.length === 0 ? undefined : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]
      return {
        sink: worker.entry.sink.name, type: worker.entry.sink.type,
        pending: sizes.get(worker.entry.sink.name)?.pending ?? 0, deadLettered: sizes.get(worker.entry.sink.name)?.deadLettered ?? 0,
        delivered: worker.delivered, attempts: worker.attempts, retries: worker.retries, failures: worker.failures,
        latencyP50Ms: at(0.5), latencyP99Ms: at(0.99),
        failingSince: worker.failingSinceMs === undefined ? null : new Date(worker.failingSinceMs).toISOString(),
      }
    }))
  }

  /** `value` as this outbox's kind of answer. */
  #answer<T> (value: T): OutboxAnswer<S, T> {
    return (this.#async ? Promise.resolve(value) : value) as OutboxAnswer<S, T>
  }

  /** Applies `next` to a store's answer, synchronously for a synchronous store's. */
  #then<T, R> (answer: T | Promise<T>, next: (value: T) => R): OutboxAnswer<S, R> {
    if (answer instanceof Promise) return answer.then(next) as OutboxAnswer<S, R>
    return this.#answer(next(answer))
  }

  async #run (worker: SinkWorker): Promise<void> {
    while (!this.#stopped) {
      try {
        await this.#step(worker)
        worker.storeFailures = 0
      } catch (error) {
        // The store failed (a shared store's outage): nothing settled is lost — a delivery sent
        // but not marked delivered stays at its sink's head (and a shared store's lease on the
        // sink stays this collector's until it lapses), so it is sent again under the same id.
        const delay = this.#backoff(++worker.storeFailures)
        this.#options.logger.warn({ sink: worker.entry.sink.name, retryInMs: delay, err: (error as Error).message }, 'outbox store failed; will retry')
        await worker.sleep(delay)
      }
    }
  }

  /** One turn of a sink's worker: claim its head, wait or send, settle. */
  async #step (worker: SinkWorker): Promise<void> {
    const { sink } = worker.entry
    // The rate is waited out before claiming, not between claim and send: a claim on a shared
    // store holds the sink for the group, so it is always followed by a send and a settle. The
    // wait still coalesces: what is queued meanwhile joins the batch claimed after it.
    const wait = worker.rateDelay(this.#clock.now())
    if (wait > 0) {
      await worker.sleep(wait)
      return
    }
    const now = this.#clock.now()
    // No deliveries and no next attempt: an empty queue, or (a shared store) another collector
    // holds the sink. Either way the worker looks again within IDLE_POLL_MS: it is never idle
    // for good, so it takes the sink over when the holder lets go or its lease lapses.
    const { deliveries: head, nextAttemptAtMs } = await this.#store.claim(sink.name, sink.maxBatch, now)
    if (head.length === 0) {
      await worker.sleep(nextAttemptAtMs === null ? IDLE_POLL_MS : Math.min(IDLE_POLL_MS, nextAttemptAtMs - now))
      return
    }
    worker.markSent(now)
    // Alert changes and audit entries go out by different calls: this turn sends the head's kind, up to the first of
    // the other; the rest stay queued, unsettled, in order, for the next turn.
    const auditHead = head[0]!.change === 'audit'
    const ofHeadKind = head.findIndex((d) => (d.change === 'audit') !== auditHead)
    const claimed = ofHeadKind === -1 ? head : head.slice(0, ofHeadKind)
    worker.attempts++
    let result: DeliveryResult
    try {
      result = auditHead
        ? await (sink.sendAudit?.(claimed.flatMap((d): AuditDelivery[] => d.change === 'audit' ? [{ id: d.id, change: d.change, audit: d.audit, createdAtMs: d.createdAtMs, attempts: d.attempts }] : []))
          // Queued for a sink that no longer takes the trail (its configuration changed): kept as a dead letter.
          ?? { outcome: 'failure', error: `${sink.type} sink "${sink.name}" does not take the audit trail` })
        : await sink.send(claimed.flatMap((d): Delivery[] => d.change === 'audit' ? [] : [{ id: d.id, change: d.change, alert: d.alert, createdAtMs: d.createdAtMs, attempts: d.attempts }]))
    } catch (error) {
      // A sink should answer rather than throw; if one throws, it is a retry, not a crash.
      result = { outcome: 'retryable', error: (error as Error).message }
    }
    await this.#settle(worker, claimed, result)
  }


  async #settle (worker: SinkWorker, rows: QueuedDelivery[], result: DeliveryResult): Promise<void> {
    const { sink } = worker.entry
    const now = this.#clock.now()
    const { logger } = this.#options
    if (result.outcome === 'success') {
      const prune = now - this.#marksPrunedAtMs >= MARK_PRUNE_EVERY_MS
      await this.#store.delivered(rows, prune ? now - MARK_RETENTION_MS : undefined)
      if (prune) this.#marksPrunedAtMs = now
      worker.delivered += rows.length
      for (const row of rows) worker.recordLatency(now - row.createdAtMs)
      if (worker.failingSinceMs !== undefined) {
        logger.info({ sink: sink.name, failingForMs: now - worker.failingSinceMs }, 'alert sink works again')
        if (worker.reportedFailing) this.#options.onSinkRecovered?.(sink)
      }
      worker.failingSinceMs = undefined
      worker.reportedFailing = false
      return
    }
    worker.lastError = result.error
    if (result.outcome === 'failure') {
      // The channel refused these for good (e.g. HTTP 400): retrying cannot help; keep them for an operator.
      worker.failures += rows.length
      await this.#store.deadLetter(rows, result.error)
      logger.error({ sink: sink.name, deliveries: rows.map((r) => r.id), err: result.error }, 'alert sink refused a delivery; moved to the dead-letter list')
      return
    }
    worker.retries += rows.length
    worker.failingSinceMs ??= now
    const attempts = rows[0]!.attempts + 1
    const delay = result.retryAfterMs ?? this.#backoff(attempts)
    await this.#store.retry(rows, now + delay, result.error)
    logger.warn({ sink: sink.name, attempts, retryInMs: delay, err: result.error }, 'alert delivery failed; will retry')
    await this.#deadLetterOverdue(worker, now)
  }

  /** A sink down past `deadLetterAfterMs`: its overdue deliveries move to the dead-letter list, and the outage is reported once. */
  async #deadLetterOverdue (worker: SinkWorker, now: number): Promise<void> {
    const { sink } = worker.entry
    const cutoff = now - this.#options.deadLetterAfterMs
    if (worker.failingSinceMs === undefined || worker.failingSinceMs > cutoff) return
    const moved = await this.#store.deadLetterOverdue(sink.name, cutoff)
    if (moved > 0) this.#options.logger.error({ sink: sink.name, deadLettered: moved, err: worker.lastError }, 'alert sink down too long; deliveries moved to the dead-letter list')
    if (!worker.reportedFailing) {
      worker.reportedFailing = true
      this.#options.onSinkFailing?.(sink, { since: new Date(worker.failingSinceMs).toISOString(), lastError: worker.lastError, deadLettered: moved })
    }
  }

  /** Exponential back-off with full jitter (AWS Architecture Blog, "Exponential Backoff and Jitter"). */
  #backoff (attempts: number): number {
    const base = this.#options.baseBackoffMs ?? 1_000
    const cap = this.#options.maxBackoffMs ?? 300_000
    return Math.round(Math.random() * Math.min(cap, base * 2 ** Math.min(attempts, 30))) + 50
  }
}

/**
 * The delivery id of one change of an alert to one sink: the same whoever
 * queues it and however often, so the store and the receiver (webhook-id)
 * can tell a repeat. Each delivered change (opened, acknowledged,
 * resolved) happens once in an alert's life.
 */
export function deliveryId (sink: string, change: DeliveredChange, alertId: string): string {
  return `msg_${createHash('sha256').update(JSON.stringify([sink, alertId, change])).digest('base64url').slice(0, 32)}`
}

/** An audit entry's delivery to one sink; its id from the entry's hash, the same whoever queues it. */
export function auditDelivery (sink: string, entry: AuditRecord, nowMs: number): NewAuditDelivery {
  const id = `aud_${createHash('sha256').update(JSON.stringify([sink, 'audit', entry.hash])).digest('base64url').slice(0, 32)}`
  return { id, sink, alertId: `audit:${entry.seq}`, change: 'audit', audit: entry, createdAtMs: nowMs }
}

function isDelivered (change: AlertChange['change']): change is DeliveredChange {
  return (DELIVERED_CHANGES as readonly string[]).includes(change)
}

function routes (route: Route, alert: Alert): boolean {
  if (SEVERITIES.indexOf(alert.severity) < SEVERITIES.indexOf(route.minSeverity)) return false
  return route.policies === undefined || route.policies.includes(alert.policy)
}
