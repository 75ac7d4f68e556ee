/**
 * The audit trail in the collector group's PostgreSQL: `audit_events` and
 * `audit_head` of db/migrations/0001_initial.sql. The database keeps the
 * chain: the `audit_chain` trigger numbers each insert under the lock of
 * `audit_head`'s one row, stamps it with the database's clock and hashes it
 * (`audit_hash()`), so collectors appending at once make one chain in
 * commit order; UPDATE, DELETE and TRUNCATE are refused by triggers.
 * `verify` asks `audit_verify()` where the chain breaks and names why with
 * chain.ts's `classifyBreak`, as the SQLite store does.
 *
 * The store does not own its pool: a collector's stores share one, and
 * `close` leaves it open.
 */
import type { Pool } from 'pg'
import { inPgTransaction } from '../shared/postgres.ts'
import type { AsyncAuditStore, AuditEntry, AuditEvent, AuditPage, AuditQuery, AuditVerdict } from './audit-store.ts'
import { classifyBreak, verdict } from './chain.ts'
import { storedDetail, withoutFrom } from './event.ts'

// The time as the API shows it (UTC, milliseconds); the hash covers the microseconds. seq as text (bigint):
// ORDER BY must name audit_events.seq, or it sorts this text alias ("10" before "2").
const COLUMNS = `seq::text AS seq, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS at, actor, action, subject, detail, prev_hash, hash`

interface Row { seq: string, at: string, actor: string, action: string, subject: string | null, detail: unknown, prev_hash: string, hash: string }

export interface PgAuditStoreOptions {
  /** The group's pool (db/pool.ts), migrated (db/migrate.ts); the caller ends it. */
  pool: Pool
}

export class PgAuditStore implements AsyncAuditStore {
  readonly #pool: Pool

  constructor (options: PgAuditStoreOptions) {
    this.#pool = options.pool
  }

  async append (event: AuditEvent): Promise<AuditEntry> {
    const detail = storedDetail(event)
    const recorded = await this.#recorded(event.key)
    if (recorded) return recorded
    try {
      // seq, at, prev_hash and hash are the audit_chain trigger's.
      const { rows } = await this.#pool.query<Row>(
        `INSERT INTO audit_events (actor, action, subject, detail, idempotency_key) VALUES ($1, $2, $3, $4::jsonb, $5) RETURNING ${COLUMNS}`,
        [event.actor, event.action, event.subject ?? null, JSON.stringify(detail), event.key ?? null])
      return entryOf(rows[0]!)
    } catch (error) {
      // Another writer recorded the key first. Not ON CONFLICT DO NOTHING: the
      // BEFORE INSERT trigger has moved the head by then, and only the failed
      // statement's rollback puts it back (migration 0005).
      const raced = (error as { code?: string, constraint?: string }).code === '23505' && (error as { constraint?: string }).constraint === 'audit_events_by_key'
      if (raced) return (await this.#recorded(event.key))!
      throw error
    }
  }

  async #recorded (key: string | undefined): Promise<AuditEntry | undefined> {
    if (key === undefined) return undefined
    const { rows } = await this.#pool.query<Row>(`SELECT ${COLUMNS} FROM audit_events WHERE idempotency_key = $1`, [key])
    return rows[0] && entryOf(rows[0])
  }

  async page (query: AuditQuery, limit: number, after?: number): Promise<AuditPage> {
    const newest = (query.order ?? 'newest') === 'newest'
    const filter = query.subject === undefined ? [] : ['subject = $1']
    const values: unknown[] = query.subject === undefined ? [] : [query.subject]
    const where = (conditions: string[]) => conditions.length > 0 ? `WHERE ${conditions.join(' AND ')}` : ''
    const counted = this.#pool.query<{ total: number }>(`SELECT count(*)::int AS total FROM audit_events ${where(filter)}`, values)
    const keyset = after === undefined ? [] : [`seq ${newest ? '<' : '>'} $${values.length + 1}`]
    const pageValues = [...values, ...(after === undefined ? [] : [after]), limit + 1]
    const listed = this.#pool.query<Row>(
      `SELECT ${COLUMNS} FROM audit_events ${where([...filter, ...keyset])} ORDER BY audit_events.seq ${newest ? 'DESC' : 'ASC'} LIMIT $${pageValues.length}`, pageValues)
    const [{ rows: [count] }, { rows }] = await Promise.all([counted, listed])
    const items = rows.slice(0, limit).map(entryOf)
    return { items, total: count!.total, last: rows.length > limit ? items.at(-1)!.seq : null }
  }

  verify (): Promise<AuditVerdict> {
    return inPgTransaction(this.#pool, async (client) => {
      // One snapshot for the walk, the head and the counts: appends meanwhile are unseen, not half-seen.
      await client.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY')
      const { rows: [state] } = await client.query<{ entries: number, last: string, head_seq: string | null }>(
        'SELECT count(*)::int AS entries, coalesce(max(seq), 0)::text AS last, (SELECT seq::text FROM audit_head) AS head_seq FROM audit_events')
      const { entries } = state!
      const last = Number(state!.last)
      // audit_verify() reads a missing head as a whole chain; a trail without its head cannot be checked to its end.
      if (state!.head_seq === null) return verdict(entries, { brokenAt: last + 1, reason: 'head-moved', message: 'the head (audit_head) is missing: the trail\'s end cannot be checked' })
      const { rows: [verified] } = await client.query<{ broken: string | null }>('SELECT audit_verify()::text AS broken')
      if (verified!.broken === null) return verdict(entries, undefined)
      const brokenAt = Number(verified!.broken)
      const { rows: [entry] } = await client.query<{ self_consistent: boolean }>(
        'SELECT hash = audit_hash(seq, prev_hash, at, actor, action, subject, detail) AS self_consistent FROM audit_events WHERE seq = $1', [brokenAt])
      return verdict(entries, classifyBreak(brokenAt, entry && { selfConsistent: entry.self_consistent }, { seq: Number(state!.head_seq), hash: '' }, last))
    })
  }

  /** The pool is the caller's (shared with the group's other stores): nothing to release here. */
  async close (): Promise<void> {}
}

function entryOf (row: Row): AuditEntry {
  const { from, detail } = withoutFrom(row.detail)
  return { seq: Number(row.seq), at: row.at, actor: row.actor, action: row.action, subject: row.subject, from, detail, prevHash: row.prev_hash, hash: row.hash }
}
