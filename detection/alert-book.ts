/**
 * Alerts (docs/product.md fields): findings deduplicated by (policy, device)
 * into one alert per open condition, with its lifecycle open →
 * acknowledged → resolved. Persisted in SQLite so a restart forgets
 * nothing; a resolved condition that returns opens a new alert.
 */
import { randomUUID } from 'node:crypto'
import { DatabaseSync, type StatementSync } from 'node:sqlite'
import { type Clock, systemClock } from '../shared/clock.ts'
import { PlaceGuardError } from '../shared/errors.ts'
import type { Alert, AlertChange, AlertComment, AlertPolicy, AlertResponse, AlertStatus, Severity } from '../shared/alert-contract.ts'
import { ALERT_THREATS, type Clear, type Finding } from '../policies/index.ts'

/** A finding, or PlaceGuard's finding about itself (a system alert). */
export type Raisable = Omit<Finding, 'policy'> & { policy: AlertPolicy }

export type { Alert, AlertChange, AlertComment, AlertResponse, AlertStatus }

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
 * SQL: a book of 100k alerts answers a page by parsing that page only.
 * Added to books written before they existed, filled from the body.
 */
const LISTED_COLUMNS = ['severity', 'site', 'resolved_at'] as const
const LISTED_INDEXES = `
CREATE INDEX IF NOT EXISTS alerts_page ON alerts (detected_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS alerts_expiry ON alerts (status, resolved_at);
`

/** Resolved alerts are kept this long for the record, then deleted (docs/product.md: alerts "and their history"). */
export const DEFAULT_RESOLVED_RETENTION_MS = 90 * 86_400_000
/** How often at most the book deletes expired alerts while it is being read. */
const EXPIRE_EVERY_MS = 3_600_000
/** What `list()` answers at most when the caller names no limit. */
export const LIST_LIMIT = 10_000

/** A list's filters; every one is applied in SQL. */
export interface AlertQuery { status?: AlertStatus, policy?: AlertPolicy, deviceId?: string, severity?: Severity, site?: string }
export interface AlertPage { items: Alert[], total: number, next: string | null }

export class AlertBook {
  readonly #db: DatabaseSync
  readonly #clock: Clock
  readonly #live: StatementSync
  readonly #upsert: StatementSync
  readonly #byId: StatementSync
  readonly #expire: StatementSync
  readonly #retentionMs: number
  #expiredAtMs = -Infinity

  constructor (options: { path?: string, clock?: Clock, resolvedRetentionMs?: number } = {}) {
    this.#db = new DatabaseSync(options.path ?? ':memory:')
    this.#db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;')
    this.#db.exec(SCHEMA)
    const present = new Set((this.#db.prepare('PRAGMA table_info(alerts)').all() as Array<{ name: string }>).map((c) => c.name))
    for (const column of LISTED_COLUMNS.filter((c) => !present.has(c))) {
      const field = column === 'resolved_at' ? 'resolvedAt' : column
      this.#db.exec(`ALTER TABLE alerts ADD COLUMN ${column} TEXT; UPDATE alerts SET ${column} = json_extract(body, '$.${field}');`)
    }
    this.#db.exec(LISTED_INDEXES)
    this.#clock = options.clock ?? systemClock
    this.#retentionMs = options.resolvedRetentionMs ?? DEFAULT_RESOLVED_RETENTION_MS
    this.#live = this.#db.prepare('SELECT body FROM alerts WHERE policy = ? AND device_id = ? AND status != \'resolved\'')
    this.#upsert = this.#db.prepare(`INSERT INTO alerts (id, policy, device_id, status, detected_at, severity, site, resolved_at, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
      ON CONFLICT (id) DO UPDATE SET status = excluded.status, severity = excluded.severity, site = excluded.site, resolved_at = excluded.resolved_at, body = excluded.body`)
    this.#expire = this.#db.prepare('DELETE FROM alerts WHERE status = \'resolved\' AND resolved_at < ?')
    this.#byId = this.#db.prepare('SELECT body FROM alerts WHERE id = ?')
  }

  /** Folds a finding into the live alert for its (policy, device), or opens one. */
  raise (finding: Raisable, where: { site?: string | null, kind?: string | null } = {}): AlertChange {
    const { site, kind, ...found } = finding
    const now = new Date(this.#clock.now()).toISOString()
    const live = this.#liveAlert(finding.policy, finding.deviceId)
    if (live) {
      const updated: Alert = { ...live, severity: found.severity, summary: found.summary, evidence: found.evidence, lastSeenAt: now, occurrences: live.occurrences + 1 }
      this.#save(updated)
      return { change: 'updated', alert: updated }
    }
    const threat = ALERT_THREATS[finding.policy]
    const alert: Alert = {
      id: randomUUID(), policy: finding.policy, severity: finding.severity, deviceId: finding.deviceId,
      site: site ?? where.site ?? null, kind: kind ?? where.kind ?? null, summary: finding.summary, detectedAt: now, status: 'open',
      evidence: finding.evidence, stride: threat.stride, attack: threat.attack ? `${threat.attack.id} ${threat.attack.name}` : null,
      lastSeenAt: now, occurrences: 1, acknowledgedBy: null, resolvedAt: null, resolution: null, response: null, comments: [],
    }
    this.#save(alert)
    return { change: 'opened', alert }
  }

  /** The condition cleared by itself (the device spoke again, firmware updated). */
  clear (clear: Omit<Clear, 'policy'> & { policy: AlertPolicy }): AlertChange | undefined {
    const live = this.#liveAlert(clear.policy, clear.deviceId)
    return live ? this.#resolve(live, `auto: ${clear.reason}`) : undefined
  }

  acknowledge (id: string, by: string): AlertChange | undefined {
    const alert = this.get(id)
    if (!alert || alert.status !== 'open') return undefined
    const updated: Alert = { ...alert, status: 'acknowledged', acknowledgedBy: by }
    this.#save(updated)
    return { change: 'acknowledged', alert: updated }
  }

  resolve (id: string, by: string): AlertChange | undefined {
    const alert = this.get(id)
    return alert && alert.status !== 'resolved' ? this.#resolve(alert, `by ${by}`) : undefined
  }

  /** Records what was done about the alert's device (whatever the alert's status: a quarantine outlives a resolve). */
  recordResponse (id: string, response: Omit<AlertResponse, 'updatedAt'>): AlertChange | undefined {
    const alert = this.get(id)
    if (!alert) return undefined
    const updated: Alert = { ...alert, response: { ...response, updatedAt: new Date(this.#clock.now()).toISOString() } }
    this.#save(updated)
    return { change: 'response', alert: updated }
  }

  /** Adds an analyst's note (any status). */
  comment (id: string, by: string, text: string): AlertChange | undefined {
    const alert = this.get(id)
    if (!alert) return undefined
    const updated: Alert = { ...alert, comments: [...alert.comments, { by, at: new Date(this.#clock.now()).toISOString(), text }] }
    this.#save(updated)
    return { change: 'commented', alert: updated }
  }

  get (id: string): Alert | undefined {
    const row = this.#byId.get(id) as { body: string } | undefined
    return row && parse(row.body)
  }

  /** The newest alerts that match, at most `limit` (parsed: only those). */
  list (query: AlertQuery = {}, limit = LIST_LIMIT): Alert[] {
    return this.page(query, limit).items
  }

  /**
   * One page of the alerts that match, newest first. `next` is an opaque
   * cursor (the last item's time and id: keyset paging, so alerts opened
   * meanwhile neither shift nor repeat a page); `total` is counted in SQL.
   */
  page (query: AlertQuery, limit: number, cursor?: string): AlertPage {
    this.expire()
    const conditions: string[] = []
    const values: string[] = []
    for (const [column, value] of [['status', query.status], ['policy', query.policy], ['device_id', query.deviceId], ['severity', query.severity], ['site', query.site]] as const) {
      if (value === undefined) continue
      conditions.push(`${column} = ?`)
      values.push(value)
    }
    const where = (extra: string[]) => [...conditions, ...extra].length > 0 ? `WHERE ${[...conditions, ...extra].join(' AND ')}` : ''
    const { total } = this.#db.prepare(`SELECT COUNT(*) AS total FROM alerts ${where([])}`).get(...values) as { total: number }
    const after = cursor === undefined ? undefined : decodeCursor(cursor)
    const keyset = after ? ['(detected_at < ? OR (detected_at = ? AND id < ?))'] : []
    const rows = this.#db.prepare(`SELECT id, detected_at, body FROM alerts ${where(keyset)} ORDER BY detected_at DESC, id DESC LIMIT ?`)
      .all(...values, ...(after ? [after.detectedAt, after.detectedAt, after.id] : []), limit + 1) as Array<{ id: string, detected_at: string, body: string }>
    const last = rows.length > limit ? rows[limit - 1] : undefined
    return { items: rows.slice(0, limit).map((row) => parse(row.body)), total, next: last ? encodeCursor(last.detected_at, last.id) : null }
  }

  /** Deletes resolved alerts older than the retention (at most hourly unless `force`); answers how many went. */
  expire (force = false): number {
    const now = this.#clock.now()
    if (!force && now - this.#expiredAtMs < EXPIRE_EVERY_MS) return 0
    this.#expiredAtMs = now
    return Number(this.#expire.run(new Date(now - this.#retentionMs).toISOString()).changes)
  }

  close (): void {
    this.#db.close()
  }

  #resolve (alert: Alert, resolution: string): AlertChange {
    const resolved: Alert = { ...alert, status: 'resolved', resolvedAt: new Date(this.#clock.now()).toISOString(), resolution }
    this.#save(resolved)
    return { change: 'resolved', alert: resolved }
  }

  #liveAlert (policy: AlertPolicy, deviceId: string): Alert | undefined {
    const row = this.#live.get(policy, deviceId) as { body: string } | undefined
    return row && parse(row.body)
  }

  #save (alert: Alert): void {
    this.#upsert.run(alert.id, alert.policy, alert.deviceId, alert.status, alert.detectedAt, alert.severity, alert.site, alert.resolvedAt, JSON.stringify(alert))
  }
}

/** Alerts stored before a field existed read as if it were empty. */
function parse (body: string): Alert {
  return { response: null, comments: [], ...JSON.parse(body) as Partial<Alert> } as Alert
}

function encodeCursor (detectedAt: string, id: string): string {
  return Buffer.from(`${detectedAt}|${id}`).toString('base64url')
}

function decodeCursor (cursor: string): { detectedAt: string, id: string } {
  const match = /^(\d{4}-\d\d-\d\dT[\d:.]+Z)\|([0-9a-f-]{36})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'))
  if (!match) throw new PlaceGuardError('PG_ERR_INPUT_INVALID', 'cursor: not a cursor this API gave out', { field: 'cursor', hint: 'pass the `next` of the previous page' })
  return { detectedAt: match[1]!, id: match[2]! }
}
