/**
 * The alert store in PostgreSQL, shared by a collector group: the `alerts`
 * and `alert_changes` tables of db/migrations/0001_initial.sql. The whole
 * Alert sits in `body` (jsonb) beside the columns lists filter, page and
 * expire on; a CHECK keeps the two in step.
 *
 * The deduplication key is the database's: the partial unique index
 * `alerts_one_live` on (policy, device_id) WHERE status <> 'resolved'.
 *   - `raise` is one statement, INSERT … ON CONFLICT … DO UPDATE …
 *     RETURNING: two collectors raising one condition at once make one
 *     alert with two occurrences, never two alerts (no read-then-write).
 *   - `update` and `updateLive` lock the alert's row (SELECT … FOR UPDATE)
 *     and write it in the same transaction; a change that would make a
 *     second live alert fails on the index and stores nothing.
 * Every write also appends the alert after it to `alert_changes` (opened,
 * updated, acknowledged, resolved, response, commented), in the same
 * transaction and under the row's lock, so one alert's history is in order.
 *
 * In a collector group, detection's writes for a device carry the lease of
 * the device's partition (`fence`, shared/fencing.ts): a collector paused
 * past its lease cannot write an alert over the new holder's.
 *
 * The store does not own its pool: collectors share one pool between their
 * stores, and `close` leaves it open.
 */
import type { Pool, PoolClient } from 'pg'
import type { Alert, AlertChange, AlertPolicy } from '../shared/alert-contract.ts'
import { checkFence, type Fence } from '../shared/fencing.ts'
import { inPgTransaction } from '../shared/postgres.ts'
import type { AlertPosition, AlertQuery, AlertSighting, AlertStorePage, AsyncAlertStore } from './alert-store.ts'

const COLUMNS = 'id, policy, device_id, status, severity, site, detected_at, resolved_at, body'

/**
 * `raise` in one statement: open the (policy, device)'s live alert, or
 * refresh it as `refreshed` (alert-store.ts) does, with the sighting's
 * fields ($10…$13). `xmax = 0` tells a fresh insert from a row the
 * conflict updated. The change is logged in the same statement.
 */
const RAISE = `
WITH raised AS (
  INSERT INTO alerts (${COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb)
  ON CONFLICT (policy, device_id) WHERE status <> 'resolved'
  DO UPDATE SET severity = $10, body = alerts.body || jsonb_build_object(
    'severity', $10::text, 'summary', $11::text, 'evidence', $12::jsonb, 'lastSeenAt', $13::text,
    'occurrences', (alerts.body ->> 'occurrences')::int + 1)
  RETURNING id, body, xmax = 0 AS opened
), logged AS (
  INSERT INTO alert_changes (alert_id, change, alert)
  SELECT id, CASE WHEN opened THEN 'opened' ELSE 'updated' END, body FROM raised
)
SELECT body, opened FROM raised`

export interface PgAlertStoreOptions {
  /** The group's pool (db/pool.ts), migrated (db/migrate.ts); the caller ends it. */
  pool: Pool
  /**
   * The lease a device's alerts are written under (shared/fencing.ts): its
   * partition and the token this collector holds it by; undefined for an
   * alert of no partition this collector reads (system alerts, storms) or
   * outside a group. Detection's writes for a device (`raise`,
   * `updateLive`) check it in their transaction and fail with
   * StaleLeaseError once a newer holder has shown a higher token.
   * Operators' writes by alert id are not fenced: they hold no lease.
   */
  fence?: (deviceId: string) => Fence | undefined
}

export class PgAlertStore implements AsyncAlertStore {
  readonly #pool: Pool
  readonly #fence: (deviceId: string) => Fence | undefined

  constructor (options: PgAlertStoreOptions) {
    this.#pool = options.pool
    this.#fence = options.fence ?? (() => undefined)
  }

  async raise (opened: Alert, seen: AlertSighting): Promise<{ change: 'opened' | 'updated', alert: Alert }> {
    const values = [...columnValues(opened), seen.severity, seen.summary, JSON.stringify(seen.evidence), seen.lastSeenAt]
    const fence = this.#fence(opened.deviceId)
    // Unfenced, one statement; fenced, the token's check first in the same transaction.
    const { rows } = fence === undefined
      ? await this.#pool.query<{ body: Alert, opened: boolean }>(RAISE, values)
      : await inPgTransaction(this.#pool, async (client) => {
        await checkFence(client, fence)
        return client.query<{ body: Alert, opened: boolean }>(RAISE, values)
      })
    const row = rows[0]!
    return { change: row.opened ? 'opened' : 'updated', alert: parse(row.body) }
  }

  update (id: string, change: (alert: Alert) => Alert | undefined): Promise<Alert | undefined> {
    return inPgTransaction(this.#pool, async (client) => {
      const { rows } = await client.query<{ body: Alert }>('SELECT body FROM alerts WHERE id = $1 FOR UPDATE', [id])
      return this.#change(client, rows[0] && parse(rows[0].body), change)
    })
  }

  updateLive (policy: AlertPolicy, deviceId: string, change: (alert: Alert) => Alert | undefined): Promise<Alert | undefined> {
    const fence = this.#fence(deviceId)
    return inPgTransaction(this.#pool, async (client) => {
      if (fence !== undefined) await checkFence(client, fence)
      // Under READ COMMITTED a row resolved meanwhile by another collector is re-checked after its lock is released, and then skipped.
      const { rows } = await client.query<{ body: Alert }>('SELECT body FROM alerts WHERE policy = $1 AND device_id = $2 AND status <> \'resolved\' FOR UPDATE', [policy, deviceId])
      return this.#change(client, rows[0] && parse(rows[0].body), change)
    })
  }

  async get (id: string): Promise<Alert | undefined> {
    const { rows } = await this.#pool.query<{ body: Alert }>('SELECT body FROM alerts WHERE id = $1', [id])
    return rows[0] && parse(rows[0].body)
  }

  async page (query: AlertQuery, limit: number, after?: AlertPosition): Promise<AlertStorePage> {
    const conditions: string[] = []
    const values: unknown[] = []
    for (const [column, value] of [['status', query.status], ['policy', query.policy], ['device_id', query.deviceId], ['severity', query.severity], ['site', query.site]] as const) {
      if (value === undefined) continue
      values.push(value)
      conditions.push(`${column} = $${values.length}`)
    }
    const where = (extra: string[]) => [...conditions, ...extra].length > 0 ? `WHERE ${[...conditions, ...extra].join(' AND ')}` : ''
    const counted = this.#pool.query<{ total: number }>(`SELECT count(*)::int AS total FROM alerts ${where([])}`, values)
    // Keyset on the index alerts_page (detected_at DESC, id DESC): the row comparison continues after `after`.
    const keyset = after ? [`(detected_at, id) < ($${values.length + 1}::timestamptz, $${values.length + 2}::text)`] : []
    const pageValues = [...values, ...(after ? [after.detectedAt, after.id] : []), limit + 1]
    const listed = this.#pool.query<{ id: string, body: Alert }>(
      `SELECT id, body FROM alerts ${where(keyset)} ORDER BY detected_at DESC, id DESC LIMIT $${pageValues.length}`, pageValues)
    const [{ rows: [count] }, { rows }] = await Promise.all([counted, listed])
    const items = rows.slice(0, limit).map((row) => parse(row.body))
    const last = rows.length > limit ? items.at(-1) : undefined
    // The position as the alert states it, so a cursor round-trips exactly as SQLite's does.
    return { items, total: count!.total, last: last ? { detectedAt: last.detectedAt, id: last.id } : null }
  }

  async deleteResolvedBefore (resolvedBefore: string): Promise<number> {
    // alert_changes follow their alert (ON DELETE CASCADE).
    const result = await this.#pool.query('DELETE FROM alerts WHERE status = \'resolved\' AND resolved_at < $1', [resolvedBefore])
    return result.rowCount ?? 0
  }

  /** The pool is the caller's (shared with the group's other stores): nothing to release here. */
  async close (): Promise<void> {}

  async #change (client: PoolClient, stored: Alert | undefined, change: (alert: Alert) => Alert | undefined): Promise<Alert | undefined> {
    if (!stored) return undefined
    const next = change(stored)
    if (!next) return undefined
    if (next.id !== stored.id || next.policy !== stored.policy || next.deviceId !== stored.deviceId || next.detectedAt !== stored.detectedAt) {
      throw new Error(`alert ${stored.id}: an update may not change its id, policy, deviceId or detectedAt`)
    }
    const { rows } = await client.query<{ body: Alert }>(
      'UPDATE alerts SET status = $2, severity = $3, site = $4, resolved_at = $5, body = $6::jsonb WHERE id = $1 RETURNING body',
      [next.id, next.status, next.severity, next.site, next.resolvedAt, JSON.stringify(next)])
    const { change: kind, by } = describeChange(stored, next)
    await client.query('INSERT INTO alert_changes (alert_id, change, by, alert) VALUES ($1, $2, $3, $4::jsonb)', [next.id, kind, by, JSON.stringify(next)])
    return parse(rows[0]!.body)
  }
}

/** The row's columns, $1…$9 in COLUMNS' order. */
function columnValues (alert: Alert): unknown[] {
  return [alert.id, alert.policy, alert.deviceId, alert.status, alert.severity, alert.site, alert.detectedAt, alert.resolvedAt, JSON.stringify(alert)]
}

/**
 * What an update did, for alert_changes: a status change first, then a new
 * comment, then a response's progress; anything else is `updated`. `by`:
 * the operator for their actions (who acknowledged, who commented), null
 * for detection's own.
 */
function describeChange (before: Alert, after: Alert): { change: AlertChange['change'], by: string | null } {
  if (after.status !== before.status && after.status === 'acknowledged') return { change: 'acknowledged', by: after.acknowledgedBy }
  if (after.status !== before.status && after.status === 'resolved') return { change: 'resolved', by: null }
  if (after.comments.length > before.comments.length) return { change: 'commented', by: after.comments.at(-1)!.by }
  if (JSON.stringify(after.response) !== JSON.stringify(before.response)) return { change: 'response', by: null }
  return { change: 'updated', by: null }
}

/** Alerts stored before a field existed read as if it were empty (as the SQLite store reads them). */
export function parse (body: Alert): Alert {
  return { ...{ response: null, comments: [] }, ...body }
}
