/**
 * The alert store in SQLite (`<data-dir>/alerts.db`, or memory): one row
 * per alert, its JSON body beside the columns that lists filter, page and
 * expire on, so a book of 100k alerts answers a page by parsing that page
 * only. The partial unique index `one_live_alert` is the deduplication
 * key; each operation that reads before it writes runs in one IMMEDIATE
 * transaction, so two connections to one file cannot both open an alert.
 */
import { DatabaseSync, type StatementSync } from 'node:sqlite'
import { inTransaction } from '../shared/sqlite.ts'
import type { Alert, AlertPolicy } from '../shared/alert-contract.ts'
import { type AlertPosition, type AlertQuery, type AlertSighting, type AlertStore, type AlertStorePage, refreshed } from './alert-store.ts'

const SCHEMA = `
CREATE TABLE IF NOT EXISTS alerts (
  id TEXT PRIMARY KEY, policy TEXT NOT NULL, device_id TEXT NOT NULL, status TEXT NOT NULL,
  detected_at TEXT NOT NULL, body TEXT NOT NULL
);
-- One live alert per (policy, device): the deduplication key.
CREATE UNIQUE INDEX IF NOT EXISTS one_live_alert ON alerts (policy, device_id) WHERE status != 'resolved';
CREATE INDEX IF NOT EXISTS alerts_by_time ON alerts (detected_at);
`

/**
 * Columns kept in step with the body so lists filter, page and expire in
 * SQL. Added to books written before they existed, filled from the body.
 */
const LISTED_COLUMNS = ['severity', 'site', 'resolved_at'] as const
const LISTED_INDEXES = `
CREATE INDEX IF NOT EXISTS alerts_page ON alerts (detected_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS alerts_expiry ON alerts (status, resolved_at);
`

export class SqliteAlertStore implements AlertStore {
  readonly #db: DatabaseSync
  readonly #live: StatementSync
  readonly #insert: StatementSync
  readonly #update: StatementSync
  readonly #byId: StatementSync
  readonly #expire: StatementSync

  /** `path`: the SQLite file, created if missing; in memory when absent. */
  constructor (options: { path?: string } = {}) {
    this.#db = new DatabaseSync(options.path ?? ':memory:')
    this.#db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;')
    this.#db.exec(SCHEMA)
    const present = new Set((this.#db.prepare('PRAGMA table_info(alerts)').all() as Array<{ name: string }>).map((c) => c.name))
    for (const column of LISTED_COLUMNS.filter((c) => !present.has(c))) {
      const field = column === 'resolved_at' ? 'resolvedAt' : column
      this.#db.exec(`ALTER TABLE alerts ADD COLUMN ${column} TEXT; UPDATE alerts SET ${column} = json_extract(body, '$.${field}');`)
    }
    this.#db.exec(LISTED_INDEXES)
    this.#live = this.#db.prepare('SELECT body FROM alerts WHERE policy = ? AND device_id = ? AND status != \'resolved\'')
    this.#insert = this.#db.prepare('INSERT INTO alerts (id, policy, device_id, status, detected_at, severity, site, resolved_at, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)')
    this.#update = this.#db.prepare('UPDATE alerts SET status = ?, severity = ?, site = ?, resolved_at = ?, body = ? WHERE id = ?')
    this.#expire = this.#db.prepare('DELETE FROM alerts WHERE status = \'resolved\' AND resolved_at < ?')
    this.#byId = this.#db.prepare('SELECT body FROM alerts WHERE id = ?')
  }

  raise (opened: Alert, seen: AlertSighting): { change: 'opened' | 'updated', alert: Alert } {
    return inTransaction(this.#db, () => {
      const live = this.#liveAlert(opened.policy, opened.deviceId)
      if (live) {
        const alert = refreshed(live, seen)
        this.#write(alert)
        return { change: 'updated', alert }
      }
      this.#insert.run(opened.id, opened.policy, opened.deviceId, opened.status, opened.detectedAt, opened.severity, opened.site, opened.resolvedAt, JSON.stringify(opened))
      return { change: 'opened', alert: opened }
    })
  }

  update (id: string, change: (alert: Alert) => Alert | undefined): Alert | undefined {
    return inTransaction(this.#db, () => this.#change(this.get(id), change))
  }

  updateLive (policy: AlertPolicy, deviceId: string, change: (alert: Alert) => Alert | undefined): Alert | undefined {
    // Detection asks to clear several policies for every reading, and almost
    // never is there a live alert to clear: a plain read answers that without
    // taking the write lock (an IMMEDIATE transaction per reading and policy
    // was a fifth of the collector's time). No live alert in that read is the
    // same answer as the clear having run just before any alert opened after
    // it; one that is live is read again, and changed, under the lock.
    if (!this.#live.get(policy, deviceId)) return undefined
    return inTransaction(this.#db, () => this.#change(this.#liveAlert(policy, deviceId), change))
  }

  get (id: string): Alert | undefined {
    const row = this.#byId.get(id) as { body: string } | undefined
    return row && parse(row.body)
  }

  page (query: AlertQuery, limit: number, after?: AlertPosition): AlertStorePage {
    const conditions: string[] = []
    const values: string[] = []
    for (const [column, value] of [['status', query.status], ['policy', query.policy], ['device_id', query.deviceId], ['severity', query.severity], ['site', query.site]] as const) {
      if (value === undefined) continue
      conditions.push(`${column} = ?`)
      values.push(value)
    }
    const where = (extra: string[]) => [...conditions, ...extra].length > 0 ? `WHERE ${[...conditions, ...extra].join(' AND ')}` : ''
    const { total } = this.#db.prepare(`SELECT COUNT(*) AS total FROM alerts ${where([])}`).get(...values) as { total: number }
    const keyset = after ? ['(detected_at < ? OR (detected_at = ? AND id < ?))'] : []
    const rows = this.#db.prepare(`SELECT id, detected_at, body FROM alerts ${where(keyset)} ORDER BY detected_at DESC, id DESC LIMIT ?`)
      .all(...values, ...(after ? [after.detectedAt, after.detectedAt, after.id] : []), limit + 1) as Array<{ id: string, detected_at: string, body: string }>
    const last = rows.length > limit ? rows[limit - 1] : undefined
    return { items: rows.slice(0, limit).map((row) => parse(row.body)), total, last: last ? { detectedAt: last.detected_at, id: last.id } : null }
  }

  deleteResolvedBefore (resolvedBefore: string): number {
    return Number(this.#expire.run(resolvedBefore).changes)
  }

  close (): void {
    this.#db.close()
  }

  #change (stored: Alert | undefined, change: (alert: Alert) => Alert | undefined): Alert | undefined {
    if (!stored) return undefined
    const next = change(stored)
    if (!next) return undefined
    if (next.id !== stored.id || next.policy !== stored.policy || next.deviceId !== stored.deviceId || next.detectedAt !== stored.detectedAt) {
      throw new Error(`alert ${stored.id}: an update may not change its id, policy, deviceId or detectedAt`)
    }
    this.#write(next)
    return next
  }

  #liveAlert (policy: AlertPolicy, deviceId: string): Alert | undefined {
    const row = this.#live.get(policy, deviceId) as { body: string } | undefined
    return row && parse(row.body)
  }

  #write (alert: Alert): void {
    this.#update.run(alert.status, alert.severity, alert.site, alert.resolvedAt, JSON.stringify(alert), alert.id)
  }
}

/** Alerts stored before a field existed read as if it were empty. */
function parse (body: string): Alert {
  return { response: null, comments: [], ...JSON.parse(body) as Partial<Alert> } as Alert
}
