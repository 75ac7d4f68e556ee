/**
 * The outbox store in PostgreSQL, shared by a collector group: the
 * `sinks`, `deliveries` and `delivered_marks` tables of
 * db/migrations/0001_initial.sql. A sink's queue is ordered by `seq` (the
 * order deliveries were added; the collectors' clocks differ), and the
 * sink's row is the lock that lets one collector at a time send its head:
 *
 *   claim: BEGIN; lock the sink's row unless another holds it
 *          (FOR UPDATE SKIP LOCKED; its lease lapsed counts as free);
 *          take the head by seq; lease the sink on the database's clock;
 *          COMMIT — then the worker sends outside any transaction.
 *   settle (delivered, retry, deadLetter): the deliveries and the lease's
 *          release in one transaction.
 *
 * So two collectors never send a sink's head and its successor out of
 * order; a claimant that dies loses the sink when its lease lapses, and the
 * next sends the same head again under the same delivery id. Locking the
 * deliveries instead (SKIP LOCKED on them) would hand the successor to a
 * second worker: see the migration's comment on `sinks`.
 *
 * Times from the interface are ms epochs; the columns are timestamptz.
 * The store does not own its pool (`close` leaves it open).
 */
import { randomUUID } from 'node:crypto'
import { hostname } from 'node:os'
import type { Pool, PoolClient } from 'pg'
import type { Alert } from '../shared/alert-contract.ts'
import { inPgTransaction } from '../shared/postgres.ts'
import { type AsyncOutboxStore, type DeadLetter, deliveryBody, deliveryOfRow, type NewAuditDelivery, type NewDelivery, type OutboxClaim, type QueuedDelivery, type SupersededDelivery } from './outbox-store.ts'

export interface PgOutboxStoreOptions {
  /** The group's pool (db/pool.ts), migrated (db/migrate.ts); the caller ends it. */
  pool: Pool
  /** Who holds a sink it claimed (sinks.holder): unique per process; default host, pid and a random suffix. */
  holder?: string
  /**
   * How long a claim holds its sink unless settled first (ms, database
   * clock). Longer than a send may take — one HTTP request with a 10 s
   * timeout, or one syslog write — and short, since a collector killed
   * mid-send holds up the group's deliveries to that sink for as long.
   * Default 60 s.
   */
  leaseMs?: number
}

export const DEFAULT_SINK_LEASE_MS = 60_000

/** An ms epoch as timestamptz ($n::float8, exact to the millisecond). */
const at = (param: string) => `to_timestamp(${param}::float8 / 1000)`

const ROW = 'id, sink, alert_id, change, alert, created_at, attempts, next_attempt_at, last_error'
interface Row { id: string, sink: string, alert_id: string, change: string, alert: Alert, created_at: Date, attempts: number, next_attempt_at: Date, last_error: string | null }

export class PgOutboxStore implements AsyncOutboxStore {
  readonly #pool: Pool
  readonly #holder: string
  readonly #leaseMs: number

  constructor (options: PgOutboxStoreOptions) {
    this.#pool = options.pool
    this.#holder = options.holder ?? `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`
    this.#leaseMs = options.leaseMs ?? DEFAULT_SINK_LEASE_MS
  }

  async add (deliveries: Array<NewDelivery | NewAuditDelivery>, options: { unlessDelivered?: boolean } = {}): Promise<void> {
    if (deliveries.length === 0) return
    // One alert's (or audit entry's) JSON, serialised once for all the sinks it goes to.
    const bodies = new Map<object, string>()
    const body = (of: object) => bodies.get(of) ?? bodies.set(of, JSON.stringify(of)).get(of)!
    await inPgTransaction(this.#pool, async (client) => {
      // Every queue has its lock row before its first delivery.
      await client.query('INSERT INTO sinks (name) SELECT DISTINCT unnest($1::text[]) ON CONFLICT DO NOTHING', [deliveries.map((d) => d.sink)])
      // seq is drawn in the order given (ORDER BY the array's ordinality).
      await client.query(`INSERT INTO deliveries (id, sink, alert_id, change, alert, created_at, next_attempt_at)
        SELECT id, sink, alert_id, change, alert::jsonb, ${at('ms')}, ${at('ms')}
        FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::float8[]) WITH ORDINALITY AS d (id, sink, alert_id, change, alert, ms, n)
        WHERE NOT ($7::boolean AND EXISTS (SELECT 1 FROM delivered_marks m WHERE m.sink = d.sink AND m.alert_id = d.alert_id))
        ORDER BY n
        ON CONFLICT (id) DO NOTHING`, [
        deliveries.map((d) => d.id), deliveries.map((d) => d.sink), deliveries.map((d) => d.alertId), deliveries.map((d) => d.change),
        deliveries.map((d) => body(deliveryBody(d))), deliveries.map((d) => d.createdAtMs), options.unlessDelivered === true,
      ])
    })
  }

  claim (sink: string, max: number, nowMs: number): Promise<OutboxClaim> {
    return inPgTransaction(this.#pool, async (client) => {
      const held = await client.query(`SELECT name FROM sinks WHERE name = $1
        AND (holder IS NULL OR holder = $2 OR lease_until < now()) FOR UPDATE SKIP LOCKED`, [sink, this.#holder])
      // No row: nothing was ever queued for the sink, or another collector holds it.
      if (held.rowCount === 0) return { deliveries: [], nextAttemptAtMs: null }
      const { rows } = await client.query<Row>(`SELECT ${ROW} FROM deliveries WHERE sink = $1 AND state = 'pending' ORDER BY seq LIMIT $2`, [sink, max])
      const head = rows[0]
      if (!head || head.next_attempt_at.getTime() > nowMs) {
        // Nothing to send now: the sink is free for whoever finds its head due.
        await this.#release(client, [sink])
        return { deliveries: [], nextAttemptAtMs: head ? head.next_attempt_at.getTime() : null }
      }
      await client.query('UPDATE sinks SET holder = $2, lease_until = now() + make_interval(secs => $3::float8 / 1000) WHERE name = $1', [sink, this.#holder, this.#leaseMs])
      return { deliveries: rows.map(queued), nextAttemptAtMs: head.next_attempt_at.getTime() }
    })
  }

  async delivered (deliveries: QueuedDelivery[], forgetMarksBeforeMs?: number): Promise<void> {
    await inPgTransaction(this.#pool, async (client) => {
      await client.query('DELETE FROM deliveries WHERE id = ANY($1::text[])', [deliveries.map((d) => d.id)])
      // One mark per (sink, alert): the newest change confirmed, never moved back.
      await client.query(`INSERT INTO delivered_marks (sink, alert_id, created_at)
        SELECT sink, alert_id, max(${at('ms')}) FROM unnest($1::text[], $2::text[], $3::float8[]) AS d (sink, alert_id, ms) GROUP BY sink, alert_id
        ON CONFLICT (sink, alert_id) DO UPDATE SET created_at = GREATEST(delivered_marks.created_at, excluded.created_at)`,
      [deliveries.map((d) => d.sink), deliveries.map((d) => d.alertId), deliveries.map((d) => d.createdAtMs)])
      if (forgetMarksBeforeMs !== undefined) await client.query(`DELETE FROM delivered_marks WHERE created_at < ${at('$1')}`, [forgetMarksBeforeMs])
      await this.#release(client, sinksOf(deliveries))
    })
  }

  async retry (deliveries: QueuedDelivery[], nextAttemptAtMs: number, error: string): Promise<void> {
    await inPgTransaction(this.#pool, async (client) => {
      await client.query(`UPDATE deliveries SET attempts = attempts + 1, next_attempt_at = ${at('$2')}, last_error = $3 WHERE id = ANY($1::text[])`,
        [deliveries.map((d) => d.id), nextAttemptAtMs, error])
      await this.#release(client, sinksOf(deliveries))
    })
  }

  async deadLetter (deliveries: QueuedDelivery[], error: string): Promise<void> {
    await inPgTransaction(this.#pool, async (client) => {
      await client.query('UPDATE deliveries SET attempts = attempts + 1, last_error = $2, state = \'dead\' WHERE id = ANY($1::text[])', [deliveries.map((d) => d.id), error])
      await this.#release(client, sinksOf(deliveries))
    })
  }

  async deadLetterOverdue (sink: string, queuedAtOrBeforeMs: number): Promise<number> {
    const result = await this.#pool.query(`UPDATE deliveries SET state = 'dead' WHERE sink = $1 AND state = 'pending' AND created_at <= ${at('$2')}`, [sink, queuedAtOrBeforeMs])
    return result.rowCount ?? 0
  }

  async deadLetters (sink?: string): Promise<DeadLetter[]> {
    const { rows } = await this.#pool.query<Row>(`SELECT ${ROW} FROM deliveries WHERE state = 'dead' AND ($1::text IS NULL OR sink = $1) ORDER BY created_at, seq`, [sink ?? null])
    return rows.map((row) => ({
      id: row.id, sink: row.sink, alertId: row.alert_id, createdAt: row.created_at.toISOString(),
      attempts: row.attempts, lastError: row.last_error, ...deliveryOfRow(row.change, row.alert),
    }))
  }

  requeueDeadLetters (sink: string | undefined, nowMs: number): Promise<{ requeued: number, superseded: SupersededDelivery[] }> {
    return inPgTransaction(this.#pool, async (client) => {
      const { rows: superseded } = await client.query<SupersededDelivery>(`DELETE FROM deliveries d WHERE state = 'dead' AND ($1::text IS NULL OR sink = $1) AND (
          EXISTS (SELECT 1 FROM delivered_marks m WHERE m.sink = d.sink AND m.alert_id = d.alert_id AND m.created_at > d.created_at)
          OR EXISTS (SELECT 1 FROM deliveries newer WHERE newer.sink = d.sink AND newer.alert_id = d.alert_id AND newer.state = 'pending' AND newer.created_at > d.created_at))
        RETURNING id, sink, change`, [sink ?? null])
      // To the tail, in their order: a new seq each, drawn one by one (an UPDATE of many rows draws in no set order).
      const { rows: dead } = await client.query<{ id: string }>('SELECT id FROM deliveries WHERE state = \'dead\' AND ($1::text IS NULL OR sink = $1) ORDER BY created_at, seq FOR UPDATE', [sink ?? null])
      for (const { id } of dead) {
        await client.query(`UPDATE deliveries SET state = 'pending', seq = DEFAULT, next_attempt_at = ${at('$2')}, created_at = ${at('$2')} WHERE id = $1`, [id, nowMs])
      }
      return { requeued: dead.length, superseded: superseded.map(({ id, sink, change }) => ({ id, sink, change })) }
    })
  }

  async sizes (): Promise<Map<string, { pending: number, deadLettered: number }>> {
    const { rows } = await this.#pool.query<{ sink: string, pending: number, dead: number }>(
      'SELECT sink, count(*) FILTER (WHERE state = \'pending\')::int AS pending, count(*) FILTER (WHERE state = \'dead\')::int AS dead FROM deliveries GROUP BY sink')
    return new Map(rows.map((row) => [row.sink, { pending: row.pending, deadLettered: row.dead }]))
  }

  /** The pool is the caller's (shared with the group's other stores): nothing to release here. */
  async close (): Promise<void> {}

  /** Lets go of the sinks this process holds (another's hold stays). */
  async #release (client: PoolClient, sinks: string[]): Promise<void> {
    await client.query('UPDATE sinks SET holder = NULL, lease_until = NULL WHERE name = ANY($1::text[]) AND holder = $2', [sinks, this.#holder])
  }
}

function sinksOf (deliveries: QueuedDelivery[]): string[] {
  return [...new Set(deliveries.map((d) => d.sink))]
}

function queued (row: Row): QueuedDelivery {
  return {
    id: row.id, sink: row.sink, alertId: row.alert_id, ...deliveryOfRow(row.change, row.alert),
    createdAtMs: row.created_at.getTime(), attempts: row.attempts, nextAttemptAtMs: row.next_attempt_at.getTime(), lastError: row.last_error,
  }
}
