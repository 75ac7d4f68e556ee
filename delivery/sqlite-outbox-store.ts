/**
 * The outbox store in SQLite (`<data-dir>/outbox.db`, synchronous = FULL):
 * one row per delivery, `state` pending or dead, and per sink and alert the
 * newest change the sink confirmed. One process sends (the collector), so
 * a claim is a read; `placeguard outbox` may open the same file meanwhile
 * (WAL), and its writes are transactions like the collector's.
 */
import { DatabaseSync, type StatementSync } from 'node:sqlite'
import { inTransaction } from '../shared/sqlite.ts'
import { type DeadLetter, deliveryBody, deliveryOfRow, type NewAuditDelivery, type NewDelivery, type OutboxClaim, type OutboxStore, type QueuedDelivery, type SupersededDelivery } from './outbox-store.ts'

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

interface Row { id: string, sink: string, alert_id: string, change: string, alert: string, created_at: number, attempts: number, next_attempt_at: number, last_error: string | null }

export class SqliteOutboxStore implements OutboxStore {
  readonly #db: DatabaseSync
  readonly #insert: StatementSync
  readonly #insertUnlessDelivered: StatementSync
  readonly #head: StatementSync
  readonly #delete: StatementSync
  readonly #retry: StatementSync
  readonly #kill: StatementSync
  readonly #mark: StatementSync

  /** `path`: the SQLite file, created if missing (`:memory:` for none). */
  constructor (options: { path: string }) {
    this.#db = new DatabaseSync(options.path)
    this.#db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;')
    this.#db.exec(SCHEMA)
    // Idempotent by id (outbox-store.ts): a delivery added again is skipped.
    this.#insert = this.#db.prepare('INSERT INTO deliveries (id, sink, alert_id, change, alert, created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING')
    this.#insertUnlessDelivered = this.#db.prepare(`INSERT INTO deliveries (id, sink, alert_id, change, alert, created_at, next_attempt_at)
      SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?6 WHERE NOT EXISTS (SELECT 1 FROM delivered_marks WHERE sink = ?2 AND alert_id = ?3) ON CONFLICT (id) DO NOTHING`)
    // Strictly first in, first out per sink: the head waits out its back-off and nothing overtakes it.
    this.#head = this.#db.prepare('SELECT * FROM deliveries WHERE sink = ? AND state = \'pending\' ORDER BY created_at, rowid LIMIT ?')
    this.#delete = this.#db.prepare('DELETE FROM deliveries WHERE id = ?')
    this.#retry = this.#db.prepare('UPDATE deliveries SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? WHERE id = ?')
    this.#kill = this.#db.prepare('UPDATE deliveries SET attempts = attempts + 1, last_error = ?, state = \'dead\' WHERE id = ?')
    this.#mark = this.#db.prepare('INSERT INTO delivered_marks (sink, alert_id, created_at) VALUES (?, ?, ?) ON CONFLICT (sink, alert_id) DO UPDATE SET created_at = max(created_at, excluded.created_at)')
  }

  add (deliveries: Array<NewDelivery | NewAuditDelivery>, options: { unlessDelivered?: boolean } = {}): void {
    // One alert's (or audit entry's) JSON, serialised once for all the sinks it goes to.
    const bodies = new Map<object, string>()
    inTransaction(this.#db, () => {
      for (const d of deliveries) {
        let body = bodies.get(deliveryBody(d))
        if (body === undefined) bodies.set(deliveryBody(d), body = JSON.stringify(deliveryBody(d)))
        if (options.unlessDelivered) this.#insertUnlessDelivered.run(d.id, d.sink, d.alertId, d.change, body, d.createdAtMs)
        else this.#insert.run(d.id, d.sink, d.alertId, d.change, body, d.createdAtMs, d.createdAtMs)
      }
    })
  }

  claim (sink: string, max: number, nowMs: number): OutboxClaim {
    const rows = this.#head.all(sink, max) as unknown as Row[]
    const head = rows[0]
    if (!head) return { deliveries: [], nextAttemptAtMs: null }
    if (head.next_attempt_at > nowMs) return { deliveries: [], nextAttemptAtMs: head.next_attempt_at }
    return { deliveries: rows.map(queued), nextAttemptAtMs: head.next_attempt_at }
  }

  delivered (deliveries: QueuedDelivery[], forgetMarksBeforeMs?: number): void {
    inTransaction(this.#db, () => {
      for (const d of deliveries) {
        this.#delete.run(d.id)
        this.#mark.run(d.sink, d.alertId, d.createdAtMs)
      }
      if (forgetMarksBeforeMs !== undefined) this.#db.prepare('DELETE FROM delivered_marks WHERE created_at < ?').run(forgetMarksBeforeMs)
    })
  }

  retry (deliveries: QueuedDelivery[], nextAttemptAtMs: number, error: string): void {
    inTransaction(this.#db, () => { for (const d of deliveries) this.#retry.run(nextAttemptAtMs, error, d.id) })
  }

  deadLetter (deliveries: QueuedDelivery[], error: string): void {
    inTransaction(this.#db, () => { for (const d of deliveries) this.#kill.run(error, d.id) })
  }

  deadLetterOverdue (sink: string, queuedAtOrBeforeMs: number): number {
    return Number(this.#db.prepare('UPDATE deliveries SET state = \'dead\' WHERE sink = ? AND state = \'pending\' AND created_at <= ?').run(sink, queuedAtOrBeforeMs).changes)
  }

  deadLetters (sink?: string): DeadLetter[] {
    const rows = (sink === undefined
      ? this.#db.prepare('SELECT * FROM deliveries WHERE state = \'dead\' ORDER BY created_at').all()
      : this.#db.prepare('SELECT * FROM deliveries WHERE state = \'dead\' AND sink = ? ORDER BY created_at').all(sink)) as unknown as Row[]
    return rows.map((row) => ({
      id: row.id, sink: row.sink, alertId: row.alert_id, createdAt: new Date(row.created_at).toISOString(),
      attempts: row.attempts, lastError: row.last_error, ...deliveryOfRow(row.change, JSON.parse(row.alert)),
    }))
  }

  requeueDeadLetters (sink: string | undefined, nowMs: number): { requeued: number, superseded: SupersededDelivery[] } {
    const onSink = sink === undefined ? '' : 'AND sink = ?'
    const sinkArgs = sink === undefined ? [] : [sink]
    const superseded = `state = 'dead' ${onSink} AND (
      EXISTS (SELECT 1 FROM delivered_marks m WHERE m.sink = deliveries.sink AND m.alert_id = deliveries.alert_id AND m.created_at > deliveries.created_at)
      OR EXISTS (SELECT 1 FROM deliveries newer WHERE newer.sink = deliveries.sink AND newer.alert_id = deliveries.alert_id AND newer.state = 'pending' AND newer.created_at > deliveries.created_at))`
    return inTransaction(this.#db, () => {
      const skipped = (this.#db.prepare(`SELECT id, sink, change FROM deliveries WHERE ${superseded}`).all(...sinkArgs) as unknown as SupersededDelivery[])
        .map(({ id, sink, change }) => ({ id, sink, change }))
      this.#db.prepare(`DELETE FROM deliveries WHERE ${superseded}`).run(...sinkArgs)
      const requeued = Number(this.#db.prepare(`UPDATE deliveries SET state = 'pending', next_attempt_at = ?, created_at = ? WHERE state = 'dead' ${onSink}`).run(nowMs, nowMs, ...sinkArgs).changes)
      return { requeued, superseded: skipped }
    })
  }

  sizes (): Map<string, { pending: number, deadLettered: number }> {
    const sizes = new Map<string, { pending: number, deadLettered: number }>()
    for (const { sink, state, n } of this.#db.prepare('SELECT sink, state, COUNT(*) AS n FROM deliveries GROUP BY sink, state').all() as Array<{ sink: string, state: string, n: number }>) {
      let size = sizes.get(sink)
      if (!size) sizes.set(sink, size = { pending: 0, deadLettered: 0 })
      if (state === 'pending') size.pending = n
      else if (state === 'dead') size.deadLettered = n
    }
    return sizes
  }

  close (): void {
    this.#db.close()
  }
}

function queued (row: Row): QueuedDelivery {
  return {
    id: row.id, sink: row.sink, alertId: row.alert_id, ...deliveryOfRow(row.change, JSON.parse(row.alert)),
    createdAtMs: row.created_at, attempts: row.attempts, nextAttemptAtMs: row.next_attempt_at, lastError: row.last_error,
  }
}
