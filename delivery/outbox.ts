/**
 * The durable outbox: every alert change routed to a sink is written to
 * `<data-dir>/outbox.db` (SQLite, synchronous = FULL) before anything is
 * sent, and deleted only once the sink confirms. So delivery is
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
import { randomUUID } from 'node:crypto'
import { DatabaseSync, type StatementSync } from 'node:sqlite'
import { type Clock, systemClock } from '../shared/clock.ts'
import type { Logger } from '../shared/logger.ts'
import { inTransaction } from '../shared/sqlite.ts'
import { type Alert, type AlertChange, SEVERITIES, type Severity } from '../shared/alert-contract.ts'
import { DELIVERED_CHANGES, type DeliveredChange, type Delivery, type DeliveryResult, type Sink } from './sink.ts'

/** Which alerts a sink receives. */
export interface Route {
  minSeverity: Severity
  /** Absent: every policy (system alerts included). */
  policies?: readonly string[]
}

export interface OutboxSink { sink: Sink, route: Route }

export interface OutboxOptions {
  path: string
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

export interface DeadLetter {
  id: string
  sink: string
  alertId: string
  change: DeliveredChange
  createdAt: string
  attempts: number
  lastError: string | null
  alert: Alert
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

const SCHEMA = `
CREATE TABLE IF NOT EXISTS deliveries (
  id TEXT PRIMARY KEY, sink TEXT NOT NULL, alert_id TEXT NOT NULL, change TEXT NOT NULL, alert TEXT NOT NULL,
  created_at INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at INTEGER NOT NULL,
  last_error TEXT, state TEXT NOT NULL DEFAULT 'pending'
);
CREATE INDEX IF NOT EXISTS queue ON deliveries (sink, state, created_at);
CREATE INDEX IF NOT EXISTS by_alert ON deliveries (sink, alert_id, created_at);
-- The newest change of each alert a sink confirmed: a requeued dead letter older than it is superseded.
CREATE TABLE IF NOT EXISTS delivered_marks (
  sink TEXT NOT NULL, alert_id TEXT NOT NULL, created_at INTEGER NOT NULL, PRIMARY KEY (sink, alert_id)
);
`

/** How long a sink's last confirmed change of an alert is remembered (against dead letters requeued later). */
const MARK_RETENTION_MS = 30 * 86_400_000
const MARK_PRUNE_EVERY_MS = 3_600_000

interface Row { id: string, sink: string, alert_id: string, change: string, alert: string, created_at: number, attempts: number, next_attempt_at: number, last_error: string | null }

const LATENCY_SAMPLES = 1_000
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

export class Outbox {
  readonly #db: DatabaseSync
  readonly #options: OutboxOptions
  readonly #clock: Clock
  readonly #workers = new Map<string, SinkWorker>()
  readonly #insert: StatementSync
  readonly #head: StatementSync
  readonly #delete: StatementSync
  readonly #retry: StatementSync
  readonly #kill: StatementSync
  readonly #mark: StatementSync
  #marksPrunedAtMs = -Infinity
  #superseded = 0
  #stopped = true

  constructor (options: OutboxOptions) {
    this.#options = options
    this.#clock = options.clock ?? systemClock
    this.#db = new DatabaseSync(options.path)
    this.#db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;')
    this.#db.exec(SCHEMA)
    this.#insert = this.#db.prepare('INSERT INTO deliveries (id, sink, alert_id, change, alert, created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?)')
    // Strictly first in, first out per sink: the head waits out its back-off and nothing overtakes it.
    this.#head = this.#db.prepare('SELECT * FROM deliveries WHERE sink = ? AND state = \'pending\' ORDER BY created_at, rowid LIMIT ?')
    this.#delete = this.#db.prepare('DELETE FROM deliveries WHERE id = ?')
    this.#retry = this.#db.prepare('UPDATE deliveries SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? WHERE id = ?')
    this.#kill = this.#db.prepare('UPDATE deliveries SET attempts = attempts + ?, last_error = ?, state = \'dead\' WHERE id = ?')
    this.#mark = this.#db.prepare('INSERT INTO delivered_marks (sink, alert_id, created_at) VALUES (?, ?, ?) ON CONFLICT (sink, alert_id) DO UPDATE SET created_at = max(created_at, excluded.created_at)')
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
   * Queues an alert change for every sink whose route takes it; durable on
   * return. Answers how many deliveries were queued.
   */
  enqueue ({ change, alert }: AlertChange): number {
    if (!(DELIVERED_CHANGES as readonly string[]).includes(change)) return 0
    const now = this.#clock.now()
    const body = JSON.stringify(alert)
    let queued = 0
    inTransaction(this.#db, () => {
      for (const worker of this.#workers.values()) {
        if (!routes(worker.entry.route, alert)) continue
        this.#insert.run(`msg_${randomUUID()}`, worker.entry.sink.name, alert.id, change, body, now, now)
        queued++
      }
    })
    for (const worker of this.#workers.values()) worker.kick()
    return queued
  }

  start (): void {
    if (!this.#stopped) return
    this.#stopped = false
    for (const worker of this.#workers.values()) worker.running = this.#run(worker)
  }

  /** Stops sending (an attempt in flight finishes) and closes the sinks and the database. */
  async stop (): Promise<void> {
    this.#stopped = true
    for (const worker of this.#workers.values()) worker.kick()
    await Promise.all([...this.#workers.values()].map((worker) => worker.running))
    await Promise.all([...this.#workers.values()].map((worker) => worker.entry.sink.close()))
    this.#db.close()
  }

  deadLetters (sink?: string): DeadLetter[] {
    const rows = (sink === undefined
      ? this.#db.prepare('SELECT * FROM deliveries WHERE state = \'dead\' ORDER BY created_at').all()
      : this.#db.prepare('SELECT * FROM deliveries WHERE state = \'dead\' AND sink = ? ORDER BY created_at').all(sink)) as unknown as Row[]
    return rows.map((row) => ({
      id: row.id, sink: row.sink, alertId: row.alert_id, change: row.change as DeliveredChange, createdAt: new Date(row.created_at).toISOString(),
      attempts: row.attempts, lastError: row.last_error, alert: JSON.parse(row.alert) as Alert,
    }))
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
  requeueDeadLetters (sink?: string): number {
    const now = this.#clock.now()
    const onSink = sink === undefined ? '' : 'AND sink = ?'
    const sinkArgs = sink === undefined ? [] : [sink]
    const superseded = `state = 'dead' ${onSink} AND (
      EXISTS (SELECT 1 FROM delivered_marks m WHERE m.sink = deliveries.sink AND m.alert_id = deliveries.alert_id AND m.created_at > deliveries.created_at)
      OR EXISTS (SELECT 1 FROM deliveries newer WHERE newer.sink = deliveries.sink AND newer.alert_id = deliveries.alert_id AND newer.state = 'pending' AND newer.created_at > deliveries.created_at))`
    let requeued = 0
    let skipped: Array<{ id: string, sink: string, change: string }> = []
    inTransaction(this.#db, () => {
      skipped = this.#db.prepare(`SELECT id, sink, change FROM deliveries WHERE ${superseded}`).all(...sinkArgs) as typeof skipped
      this.#db.prepare(`DELETE FROM deliveries WHERE ${superseded}`).run(...sinkArgs)
      requeued = Number(this.#db.prepare(`UPDATE deliveries SET state = 'pending', next_attempt_at = ?, created_at = ? WHERE state = 'dead' ${onSink}`).run(now, now, ...sinkArgs).changes)
    })
    if (skipped.length > 0) {
      this.#superseded += skipped.length
      this.#options.logger.info({ superseded: skipped }, 'dead letters superseded by a newer change of their alert; not sent')
    }
    for (const worker of this.#workers.values()) worker.kick()
    return requeued
  }

  /** Dead letters dropped at requeue because a newer change of their alert had been delivered or queued. */
  get supersededDeadLetters (): number {
    return this.#superseded
  }

  metrics (): SinkMetrics[] {
    const counts = this.#db.prepare('SELECT sink, state, COUNT(*) AS n FROM deliveries GROUP BY sink, state').all() as Array<{ sink: string, state: string, n: number }>
    const count = (sink: string, state: string) => counts.find((c) => c.sink === sink && c.state === state)?.n ?? 0
    return [...this.#workers.values()].map((worker) => {
      const sorted = [...worker.latencies].sort((a, b) => a - b)
      const at = (q: number) => sorted.length === 0 ? undefined : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]
      return {
        sink: worker.entry.sink.name, type: worker.entry.sink.type,
        pending: count(worker.entry.sink.name, 'pending'), deadLettered: count(worker.entry.sink.name, 'dead'),
        delivered: worker.delivered, attempts: worker.attempts, retries: worker.retries, failures: worker.failures,
        latencyP50Ms: at(0.5), latencyP99Ms: at(0.99),
        failingSince: worker.failingSinceMs === undefined ? null : new Date(worker.failingSinceMs).toISOString(),
      }
    })
  }

  async #run (worker: SinkWorker): Promise<void> {
    const { sink } = worker.entry
    while (!this.#stopped) {
      const now = this.#clock.now()
      const rows = this.#head.all(sink.name, sink.maxBatch) as unknown as Row[]
      if (rows.length === 0 || rows[0]!.next_attempt_at > now) {
        await worker.sleep(rows.length === 0 ? IDLE_POLL_MS : Math.min(IDLE_POLL_MS, rows[0]!.next_attempt_at - now))
        continue
      }
      const wait = worker.rateDelay(now)
      if (wait > 0) {
        // Waiting for the rate lets more deliveries join the batch: coalesced, not dropped.
        await worker.sleep(wait)
        continue
      }
      worker.markSent(now)
      const deliveries: Delivery[] = rows.map((row) => ({
        id: row.id, change: row.change as DeliveredChange, alert: JSON.parse(row.alert) as Alert, createdAtMs: row.created_at, attempts: row.attempts,
      }))
      worker.attempts++
      let result: DeliveryResult
      try {
        result = await sink.send(deliveries)
      } catch (error) {
        // A sink should answer rather than throw; if one throws, it is a retry, not a crash.
        result = { outcome: 'retryable', error: (error as Error).message }
      }
      this.#settle(worker, rows, result)
    }
  }

  #settle (worker: SinkWorker, rows: Row[], result: DeliveryResult): void {
    const { sink } = worker.entry
    const now = this.#clock.now()
    const { logger } = this.#options
    if (result.outcome === 'success') {
      inTransaction(this.#db, () => {
        for (const row of rows) {
          this.#delete.run(row.id)
          this.#mark.run(row.sink, row.alert_id, row.created_at)
        }
        if (now - this.#marksPrunedAtMs >= MARK_PRUNE_EVERY_MS) {
          this.#marksPrunedAtMs = now
          this.#db.prepare('DELETE FROM delivered_marks WHERE created_at < ?').run(now - MARK_RETENTION_MS)
        }
      })
      worker.delivered += rows.length
      for (const row of rows) worker.recordLatency(now - row.created_at)
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
      inTransaction(this.#db, () => { for (const row of rows) this.#kill.run(1, result.error, row.id) })
      logger.error({ sink: sink.name, deliveries: rows.map((r) => r.id), err: result.error }, 'alert sink refused a delivery; moved to the dead-letter list')
      return
    }
    worker.retries += rows.length
    worker.failingSinceMs ??= now
    const attempts = rows[0]!.attempts + 1
    const delay = result.retryAfterMs ?? this.#backoff(attempts)
    inTransaction(this.#db, () => { for (const row of rows) this.#retry.run(now + delay, result.error, row.id) })
    logger.warn({ sink: sink.name, attempts, retryInMs: delay, err: result.error }, 'alert delivery failed; will retry')
    this.#deadLetterOverdue(worker, now)
  }

  /** A sink down past `deadLetterAfterMs`: its overdue deliveries move to the dead-letter list, and the outage is reported once. */
  #deadLetterOverdue (worker: SinkWorker, now: number): void {
    const { sink } = worker.entry
    const cutoff = now - this.#options.deadLetterAfterMs
    if (worker.failingSinceMs === undefined || worker.failingSinceMs > cutoff) return
    const moved = Number(this.#db.prepare('UPDATE deliveries SET state = \'dead\' WHERE sink = ? AND state = \'pending\' AND created_at <= ?').run(sink.name, cutoff).changes)
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

function routes (route: Route, alert: Alert): boolean {
  if (SEVERITIES.indexOf(alert.severity) < SEVERITIES.indexOf(route.minSeverity)) return false
  return route.policies === undefined || route.policies.includes(alert.policy)
}
