/**
 * Alerts (PRODUCT.md fields): findings deduplicated by (policy, device)
 * into one alert per open condition, with its lifecycle open →
 * acknowledged → resolved. Persisted in SQLite so a restart forgets
 * nothing; a resolved condition that returns opens a new alert.
 */
import { randomUUID } from 'node:crypto'
import { DatabaseSync, type StatementSync } from 'node:sqlite'
import { type Clock, systemClock } from '../shared/clock.ts'
import { ALERT_THREATS, type AlertPolicy } from './catalogue.ts'
import type { Clear } from './engine.ts'
import type { Finding } from './finding.ts'
import type { Severity } from './schema.ts'

export type AlertStatus = 'open' | 'acknowledged' | 'resolved'

/**
 * The automated response taken on an alert's device (policies'
 * `response.quarantine`): requested by the collector, `active` once the
 * broker confirms, then `ended` (its time ran out) or `lifted` (by an
 * operator); `failed` if the request could not be sent.
 */
export interface AlertResponse {
  action: 'quarantine'
  status: 'requested' | 'active' | 'ended' | 'lifted' | 'failed'
  /** ISO 8601: when the quarantine ends (or ended). */
  until: string | null
  updatedAt: string
  /** Who lifted it, or why it failed. */
  detail: string | null
}

/** A finding, or PlaceGuard's finding about itself (a system alert). */
export type Raisable = Omit<Finding, 'policy'> & { policy: AlertPolicy }

export interface Alert {
  id: string
  policy: AlertPolicy
  severity: Severity
  deviceId: string
  site: string | null
  kind: string | null
  summary: string
  detectedAt: string
  status: AlertStatus
  evidence: Finding['evidence']
  /** STRIDE category and ATT&CK for ICS technique of the policy. */
  stride: string
  attack: string | null
  lastSeenAt: string
  /** Findings folded into this alert. */
  occurrences: number
  acknowledgedBy: string | null
  resolvedAt: string | null
  resolution: string | null
  response: AlertResponse | null
  /** Analysts' notes, oldest first. */
  comments: AlertComment[]
}

export interface AlertComment { by: string, at: string, text: string }

export type AlertChange = { change: 'opened' | 'updated' | 'acknowledged' | 'resolved' | 'response' | 'commented', alert: Alert }

const SCHEMA = `
CREATE TABLE IF NOT EXISTS alerts (
  id TEXT PRIMARY KEY, policy TEXT NOT NULL, device_id TEXT NOT NULL, status TEXT NOT NULL,
  detected_at TEXT NOT NULL, body TEXT NOT NULL
);
-- One live alert per (policy, device): the deduplication key.
CREATE UNIQUE INDEX IF NOT EXISTS one_live_alert ON alerts (policy, device_id) WHERE status != 'resolved';
CREATE INDEX IF NOT EXISTS alerts_by_time ON alerts (detected_at);
`

export class AlertBook {
  readonly #db: DatabaseSync
  readonly #clock: Clock
  readonly #live: StatementSync
  readonly #upsert: StatementSync
  readonly #byId: StatementSync

  constructor (options: { path?: string, clock?: Clock } = {}) {
    this.#db = new DatabaseSync(options.path ?? ':memory:')
    this.#db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;')
    this.#db.exec(SCHEMA)
    this.#clock = options.clock ?? systemClock
    this.#live = this.#db.prepare('SELECT body FROM alerts WHERE policy = ? AND device_id = ? AND status != \'resolved\'')
    this.#upsert = this.#db.prepare('INSERT INTO alerts (id, policy, device_id, status, detected_at, body) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET status = excluded.status, body = excluded.body')
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

  list (filter: { status?: AlertStatus, policy?: AlertPolicy, deviceId?: string } = {}): Alert[] {
    // Filtered in SQL on the columns #save keeps in step with the body: only matching alerts are parsed.
    const conditions: string[] = []
    const values: string[] = []
    for (const [column, value] of [['status', filter.status], ['policy', filter.policy], ['device_id', filter.deviceId]] as const) {
      if (value === undefined) continue
      conditions.push(`${column} = ?`)
      values.push(value)
    }
    const where = conditions.length > 0 ? `WHERE ${conditions.join(' AND ')}` : ''
    const rows = this.#db.prepare(`SELECT body FROM alerts ${where} ORDER BY detected_at DESC`).all(...values) as Array<{ body: string }>
    return rows.map((row) => parse(row.body))
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
    this.#upsert.run(alert.id, alert.policy, alert.deviceId, alert.status, alert.detectedAt, JSON.stringify(alert))
  }
}

/** Alerts stored before a field existed read as if it were empty. */
function parse (body: string): Alert {
  return { response: null, comments: [], ...JSON.parse(body) as Partial<Alert> } as Alert
}
