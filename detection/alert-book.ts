/**
 * Alerts (docs/product.md fields): findings deduplicated by (policy, device)
 * into one alert per open condition, with its lifecycle open →
 * acknowledged → resolved. Kept in an AlertStore (alert-store.ts; SQLite
 * by default, so a restart forgets nothing); a resolved condition that
 * returns opens a new alert. The book holds the rules, the store the rows.
 */
import { randomUUID } from 'node:crypto'
import { type Clock, systemClock } from '../shared/clock.ts'
import { PlaceGuardError } from '../shared/errors.ts'
import type { Alert, AlertChange, AlertComment, AlertPolicy, AlertResponse, AlertStatus } from '../shared/alert-contract.ts'
import { ALERT_THREATS, type Clear, type Finding } from '../policies/index.ts'
import type { AlertPosition, AlertQuery, AlertStore } from './alert-store.ts'
import { SqliteAlertStore } from './sqlite-alert-store.ts'

/** A finding, or PlaceGuard's finding about itself (a system alert). */
export type Raisable = Omit<Finding, 'policy'> & { policy: AlertPolicy }

export type { Alert, AlertChange, AlertComment, AlertQuery, AlertResponse, AlertStatus }

/** Resolved alerts are kept this long for the record, then deleted (docs/product.md: alerts "and their history"). */
export const DEFAULT_RESOLVED_RETENTION_MS = 90 * 86_400_000
/** How often at most the book deletes expired alerts while it is being read. */
const EXPIRE_EVERY_MS = 3_600_000
/** What `list()` answers at most when the caller names no limit. */
export const LIST_LIMIT = 10_000

export interface AlertPage { items: Alert[], total: number, next: string | null }

export interface AlertBookOptions {
  /** Where the alerts are kept; when absent, a SQLite store at `path`. The book closes it. */
  store?: AlertStore
  /** The SQLite file of the default store; in memory when absent. */
  path?: string
  clock?: Clock
  resolvedRetentionMs?: number
}

export class AlertBook {
  readonly #store: AlertStore
  readonly #clock: Clock
  readonly #retentionMs: number
  #expiredAtMs = -Infinity

  constructor (options: AlertBookOptions = {}) {
    this.#store = options.store ?? new SqliteAlertStore({ path: options.path })
    this.#clock = options.clock ?? systemClock
    this.#retentionMs = options.resolvedRetentionMs ?? DEFAULT_RESOLVED_RETENTION_MS
  }

  /** Folds a finding into the live alert for its (policy, device), or opens one: one step of the store. */
  raise (finding: Raisable, where: { site?: string | null, kind?: string | null } = {}): AlertChange {
    const { site, kind, ...found } = finding
    const now = this.#now()
    const threat = ALERT_THREATS[finding.policy]
    const opened: Alert = {
      id: randomUUID(), policy: finding.policy, severity: finding.severity, deviceId: finding.deviceId,
      site: site ?? where.site ?? null, kind: kind ?? where.kind ?? null, summary: finding.summary, detectedAt: now, status: 'open',
      evidence: finding.evidence, stride: threat.stride, attack: threat.attack ? `${threat.attack.id} ${threat.attack.name}` : null,
      lastSeenAt: now, occurrences: 1, acknowledgedBy: null, resolvedAt: null, resolution: null, response: null, comments: [],
    }
    return this.#store.raise(opened, { severity: found.severity, summary: found.summary, evidence: found.evidence, lastSeenAt: now })
  }

  /** The condition cleared by itself (the device spoke again, firmware updated). */
  clear (clear: Omit<Clear, 'policy'> & { policy: AlertPolicy }): AlertChange | undefined {
    const resolved = this.#store.updateLive(clear.policy, clear.deviceId, (live) => this.#resolved(live, `auto: ${clear.reason}`))
    return resolved && { change: 'resolved', alert: resolved }
  }

  acknowledge (id: string, by: string): AlertChange | undefined {
    const updated = this.#store.update(id, (alert) => alert.status === 'open' ? { ...alert, status: 'acknowledged', acknowledgedBy: by } : undefined)
    return updated && { change: 'acknowledged', alert: updated }
  }

  resolve (id: string, by: string): AlertChange | undefined {
    const resolved = this.#store.update(id, (alert) => alert.status !== 'resolved' ? this.#resolved(alert, `by ${by}`) : undefined)
    return resolved && { change: 'resolved', alert: resolved }
  }

  /** Records what was done about the alert's device (whatever the alert's status: a quarantine outlives a resolve). */
  recordResponse (id: string, response: Omit<AlertResponse, 'updatedAt'>): AlertChange | undefined {
    const updatedAt = this.#now()
    const updated = this.#store.update(id, (alert) => ({ ...alert, response: { ...response, updatedAt } }))
    return updated && { change: 'response', alert: updated }
  }

  /** Adds an analyst's note (any status). */
  comment (id: string, by: string, text: string): AlertChange | undefined {
    const at = this.#now()
    const updated = this.#store.update(id, (alert) => ({ ...alert, comments: [...alert.comments, { by, at, text }] }))
    return updated && { change: 'commented', alert: updated }
  }

  get (id: string): Alert | undefined {
    return this.#store.get(id)
  }

  /** The newest alerts that match, at most `limit` (parsed: only those). */
  list (query: AlertQuery = {}, limit = LIST_LIMIT): Alert[] {
    return this.page(query, limit).items
  }

  /**
   * One page of the alerts that match, newest first. `next` is an opaque
   * cursor (the last item's time and id: keyset paging, so alerts opened
   * meanwhile neither shift nor repeat a page); `total` is counted by the store.
   */
  page (query: AlertQuery, limit: number, cursor?: string): AlertPage {
    this.expire()
    const after = cursor === undefined ? undefined : decodeCursor(cursor)
    const { items, total, last } = this.#store.page(query, limit, after)
    return { items, total, next: last ? encodeCursor(last) : null }
  }

  /** Deletes resolved alerts older than the retention (at most hourly unless `force`); answers how many went. */
  expire (force = false): number {
    const now = this.#clock.now()
    if (!force && now - this.#expiredAtMs < EXPIRE_EVERY_MS) return 0
    this.#expiredAtMs = now
    return this.#store.deleteResolvedBefore(new Date(now - this.#retentionMs).toISOString())
  }

  close (): void {
    this.#store.close()
  }

  #resolved (alert: Alert, resolution: string): Alert {
    return { ...alert, status: 'resolved', resolvedAt: this.#now(), resolution }
  }

  #now (): string {
    return new Date(this.#clock.now()).toISOString()
  }
}

function encodeCursor ({ detectedAt, id }: AlertPosition): string {
  return Buffer.from(`${detectedAt}|${id}`).toString('base64url')
}

function decodeCursor (cursor: string): AlertPosition {
  const match = /^(\d{4}-\d\d-\d\dT[\d:.]+Z)\|([0-9a-f-]{36})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'))
  if (!match) throw new PlaceGuardError('PG_ERR_INPUT_INVALID', 'cursor: not a cursor this API gave out', { field: 'cursor', hint: 'pass the `next` of the previous page' })
  return { detectedAt: match[1]!, id: match[2]! }
}
