/**
 * The initial schema (db/migrations/0001_initial.sql) against a real
 * PostgreSQL, with connections of two "collectors" at once: what the
 * database itself guarantees the group, whatever the collectors' code does.
 *   - one live alert per (policy, device): a second insert of the pair gets
 *     a unique violation, and the store's INSERT … ON CONFLICT … WHERE
 *     status <> 'resolved' DO UPDATE turns it into a refresh of the winner;
 *   - a sink's head is claimed by one collector at a time (its `sinks` row,
 *     then a lease), so deliveries reach the sink in order, each once, and a
 *     dead claimant's sink passes on when its lease lapses;
 *   - the audit trail is append-only and hash-chained;
 *   - a partition write with a stale fencing token writes nothing.
 * The alert statements here are the ones the schema's comments prescribe
 * (detection/pg-alert-store.ts raises the same way, refreshing from the
 * sighting); the outbox's claim and settle are PgOutboxStore's own, used
 * here as they are.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createDatabasePool, migrate, type Pool, type PoolClient } from '../../db/index.ts'
import { PgOutboxStore } from '../../delivery/index.ts'
import type { Alert } from '../../shared/alert-contract.ts'
import { createLogger } from '../../shared/logger.ts'
import { startPostgres, waitForLockWait, type RunningPostgres } from '../helpers/postgres.ts'

const logger = createLogger({ level: 'silent' })
let server: RunningPostgres
let admin: Pool
const pools: Pool[] = []
/** A pool of its own, named in pg_stat_activity (so a test can see it wait on a lock): one collector. */
const collector = (name: string, url = server.url): Pool => {
  const pool = createDatabasePool({ url, applicationName: name, logger, max: 4 })
  pools.push(pool)
  return pool
}
/** A rejection as a value, so a query left running while the test goes on never rejects unheard. */
const settled = <T>(promise: Promise<T>): Promise<T | Error> => promise.catch((error: unknown) => error as Error)

beforeAll(async () => {
  server = await startPostgres()
  admin = collector('test-admin')
  await migrate(admin, { logger })
})
afterAll(async () => {
  await Promise.all(pools.map((pool) => pool.end()))
  await server?.stop()
})

describe('alerts: one live alert per (policy, device)', () => {
  let n = 0
  const alert = (policy: Alert['policy'], deviceId: string, status: Alert['status'] = 'open'): Alert => ({
    id: `alr_${++n}`, policy, severity: 'high', deviceId, site: 'riverside', kind: 'flood', summary: `${policy} on ${deviceId} (${n})`,
    detectedAt: new Date(Date.UTC(2026, 0, 1, 0, 0, n)).toISOString(), status, evidence: { n }, stride: 'Spoofing', attack: null,
    lastSeenAt: new Date(Date.UTC(2026, 0, 1, 0, 0, n)).toISOString(), occurrences: 1, acknowledgedBy: null,
    resolvedAt: status === 'resolved' ? new Date(Date.UTC(2026, 0, 1, 0, 1, n)).toISOString() : null, resolution: null, response: null, comments: [],
  })
  const values = (a: Alert) => [a.id, a.policy, a.deviceId, a.status, a.severity, a.site, a.detectedAt, a.resolvedAt, a]
  const INSERT = 'INSERT INTO alerts (id, policy, device_id, status, severity, site, detected_at, resolved_at, body) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)'
  // AlertStore.raise in one statement: open the pair's live alert, or refresh it as `refreshed` (detection/alert-store.ts) does.
  const RAISE = `${INSERT}
    ON CONFLICT (policy, device_id) WHERE status <> 'resolved'
    DO UPDATE SET severity = excluded.severity, body = alerts.body || jsonb_build_object(
      'severity', excluded.body -> 'severity', 'summary', excluded.body -> 'summary', 'evidence', excluded.body -> 'evidence',
      'lastSeenAt', excluded.body -> 'lastSeenAt', 'occurrences', (alerts.body ->> 'occurrences')::int + 1)
    RETURNING id, body, xmax = 0 AS opened`
  const alertsOf = async (policy: string, deviceId: string) =>
    (await admin.query<{ id: string, status: string, body: Alert }>('SELECT id, status, body FROM alerts WHERE policy = $1 AND device_id = $2 ORDER BY detected_at', [policy, deviceId])).rows

  it('refuses the second of two connections inserting the same (policy, device) at once: it waited for the first, then got a unique violation', async () => {
    const a = await collector('alerts-a').connect()
    const b = collector('alerts-b')
    try {
      await a.query('BEGIN')
      await a.query(INSERT, values(alert('rate-burst', 'flood-0001')))
      const second = settled(b.query(INSERT, values(alert('rate-burst', 'flood-0001'))))
      await waitForLockWait(admin, 'alerts-b') // blocked on the first's uncommitted index entry
      await a.query('COMMIT')
      expect(await second).toMatchObject({ code: '23505', constraint: 'alerts_one_live' })
    } finally {
      a.release()
    }
    expect(await alertsOf('rate-burst', 'flood-0001')).toHaveLength(1)
  })

  it('lets exactly one of eight connections racing to insert the pair win', async () => {
    const racers = Array.from({ length: 8 }, (_, i) => collector(`alerts-race-${i}`))
    const results = await Promise.allSettled(racers.map((pool) => pool.query(INSERT, values(alert('replay', 'flood-0002')))))
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1)
    for (const r of results.filter((r) => r.status === 'rejected')) expect((r as PromiseRejectedResult).reason).toMatchObject({ code: '23505', constraint: 'alerts_one_live' })
    expect(await alertsOf('replay', 'flood-0002')).toHaveLength(1)
  })

  it('turns the loser into "update the live one" with INSERT … ON CONFLICT … WHERE status <> \'resolved\' DO UPDATE', async () => {
    const a = await collector('raise-a').connect()
    const b = collector('raise-b')
    const first = alert('acl-violation', 'flood-0003')
    const repeat = { ...alert('acl-violation', 'flood-0003'), severity: 'critical' as const, evidence: { topic: 'places/x/#' } }
    try {
      await a.query('BEGIN')
      const opened = await a.query(RAISE, values(first))
      const second = b.query(RAISE, values(repeat))
      await waitForLockWait(admin, 'raise-b')
      await a.query('COMMIT')
      const updated = await second
      expect(opened.rows[0]).toMatchObject({ id: first.id, opened: true })
      expect(updated.rows[0]).toMatchObject({ id: first.id, opened: false })
      expect(updated.rows[0]!.body).toMatchObject({ id: first.id, occurrences: 2, severity: 'critical', summary: repeat.summary, evidence: repeat.evidence, detectedAt: first.detectedAt })
    } finally {
      a.release()
    }
    // And racing: eight collectors raising the same condition at once make one alert with eight more occurrences.
    const racers = Array.from({ length: 8 }, (_, i) => collector(`raise-race-${i}`))
    const results = await Promise.all(racers.map((pool) => pool.query(RAISE, values(alert('acl-violation', 'flood-0003')))))
    expect(results.every((r) => r.rows[0]!.id === first.id && r.rows[0]!.opened === false)).toBe(true)
    const [stored] = await alertsOf('acl-violation', 'flood-0003')
    expect(stored).toMatchObject({ id: first.id, status: 'open', body: { occurrences: 10, severity: 'high' } })
  })

  it('counts only live alerts: after the resolve a new alert opens, and reopening the old one beside it is refused', async () => {
    const old = alert('device-silent', 'flood-0004')
    await admin.query(RAISE, values(old))
    const resolvedAt = '2026-01-02T00:00:00.000Z'
    await admin.query('UPDATE alerts SET status = \'resolved\', resolved_at = $2, body = body || jsonb_build_object(\'status\', \'resolved\', \'resolvedAt\', $3::text) WHERE id = $1', [old.id, resolvedAt, resolvedAt])
    const next = alert('device-silent', 'flood-0004')
    const raised = await admin.query(RAISE, values(next))
    expect(raised.rows[0]).toMatchObject({ id: next.id, opened: true })
    expect((await alertsOf('device-silent', 'flood-0004')).map((a) => [a.id, a.status])).toEqual([[old.id, 'resolved'], [next.id, 'open']])
    await expect(admin.query('UPDATE alerts SET status = \'open\', resolved_at = NULL, body = body || \'{"status": "open", "resolvedAt": null}\' WHERE id = $1', [old.id]))
      .rejects.toMatchObject({ code: '23505', constraint: 'alerts_one_live' })
  })

  it('keeps the columns and the body in step, and takes an alert\'s history with it when it expires', async () => {
    const a = alert('clock-skew', 'flood-0005')
    await expect(admin.query(INSERT, [...values(a).slice(0, 3), 'acknowledged', ...values(a).slice(4)])).rejects.toMatchObject({ code: '23514', constraint: 'alerts_body_matches' })
    await admin.query(INSERT, values(a))
    await admin.query('INSERT INTO alert_changes (alert_id, change, by, alert) VALUES ($1, \'opened\', NULL, $2), ($1, \'commented\', \'operator:3f2a\', $2)', [a.id, a])
    expect((await admin.query('SELECT change, by FROM alert_changes WHERE alert_id = $1 ORDER BY seq', [a.id])).rows).toEqual([{ change: 'opened', by: null }, { change: 'commented', by: 'operator:3f2a' }])
    await admin.query('DELETE FROM alerts WHERE id = $1', [a.id])
    expect((await admin.query('SELECT 1 FROM alert_changes WHERE alert_id = $1', [a.id])).rowCount).toBe(0)
  })
})

describe('outbox: a sink\'s head belongs to one collector at a time', () => {
  // The claim and settle statements are PgOutboxStore's (delivery/pg-outbox-store.ts); two
  // collectors racing on one sink are in test/db/pg-outbox-store.test.ts.
  let n = 0
  const outbox = (name: string, holder: string, leaseMs?: number) => new PgOutboxStore({ pool: collector(name), holder, leaseMs })
  const addDeliveries = async (store: PgOutboxStore, sink: string, count: number): Promise<string[]> => {
    const ids = Array.from({ length: count }, () => `msg_${++n}`)
    await store.add(ids.map((id) => ({ id, sink, alertId: `alr_${id}`, change: 'opened' as const, alert: { id: `alr_${id}` } as Alert, createdAtMs: Date.now() })))
    return ids
  }
  const claim = async (store: PgOutboxStore, sink: string, max: number) => (await store.claim(sink, max, Date.now())).deliveries

  it('gives a second claimer nothing while the first holds the sink\'s row or lease, and the successor only once the head is settled', async () => {
    const a = outbox('outbox-a', 'a')
    const b = outbox('outbox-b', 'b')
    const [d1, d2] = await addDeliveries(a, 'webhook-1', 3)
    // A is mid-claim: its transaction holds the sink's row. B, skipping the locked row, takes nothing (not d2).
    const aClient = await collector('outbox-a-raw').connect()
    try {
      await aClient.query('BEGIN')
      expect((await aClient.query('SELECT name FROM sinks WHERE name = $1 FOR UPDATE', ['webhook-1'])).rowCount).toBe(1)
      expect(await b.claim('webhook-1', 1, Date.now())).toEqual({ deliveries: [], nextAttemptAtMs: null })
    } finally {
      await aClient.query('ROLLBACK')
      aClient.release()
    }
    const head = await claim(a, 'webhook-1', 1)
    expect(head.map((d) => d.id)).toEqual([d1])
    expect((await admin.query('SELECT holder FROM sinks WHERE name = $1', ['webhook-1'])).rows).toEqual([{ holder: 'a' }])
    // A sends d1 outside any transaction, holding the sink by its lease.
    expect(await claim(b, 'webhook-1', 1)).toEqual([])
    await a.delivered(head)
    expect((await claim(b, 'webhook-1', 1)).map((d) => d.id)).toEqual([d2])
  })

  it('would hand the successor to the second claimer if it skipped locked deliveries instead: why the sink row is the lock', async () => {
    const [d1, d2] = await addDeliveries(outbox('naive', 'naive'), 'webhook-2', 2)
    const skipLockedDeliveries = 'SELECT id FROM deliveries WHERE sink = $1 AND state = \'pending\' ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED'
    const a = await collector('naive-a').connect()
    const b = await collector('naive-b').connect()
    try {
      await a.query('BEGIN')
      await b.query('BEGIN')
      expect((await a.query<{ id: string }>(skipLockedDeliveries, ['webhook-2'])).rows.map((r) => r.id)).toEqual([d1])
      expect((await b.query<{ id: string }>(skipLockedDeliveries, ['webhook-2'])).rows.map((r) => r.id)).toEqual([d2])
    } finally {
      await a.query('ROLLBACK')
      await b.query('ROLLBACK')
      a.release()
      b.release()
    }
  })

  it('passes a dead claimant\'s sink on when its lease lapses: the next collector sends the same head again, same id', async () => {
    const a = outbox('lease-a', 'a', 300)
    const b = outbox('lease-b', 'b')
    const [d1] = await addDeliveries(a, 'webhook-4', 2)
    expect((await claim(a, 'webhook-4', 1)).map((d) => d.id)).toEqual([d1])
    // A dies without settling.
    expect(await claim(b, 'webhook-4', 1)).toEqual([])
    const deadline = Date.now() + 5_000
    let taken: string[] = []
    while (taken.length === 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50))
      taken = (await claim(b, 'webhook-4', 1)).map((d) => d.id)
    }
    expect(taken).toEqual([d1])
    expect((await admin.query('SELECT holder FROM sinks WHERE name = $1', ['webhook-4'])).rows).toEqual([{ holder: 'b' }])
  })
})

describe('audit trail: append-only, hash-chained', () => {
  let audit: Pool
  beforeAll(async () => {
    audit = collector('audit-admin', await server.createDatabase('audit_trail'))
    await migrate(audit, { logger })
  })
  const append = (db: Pool, action: string, subject: string, detail: object = {}) =>
    db.query('INSERT INTO audit_events (actor, action, subject, detail) VALUES ($1, $2, $3, $4)', ['operator:3f2a', action, subject, detail])

  it('chains events from two collectors appending at once into one gapless sequence that verifies', async () => {
    const url = await server.createDatabase('audit_chain')
    const a = collector('audit-a', url)
    const b = collector('audit-b', url)
    await migrate(a, { logger })
    await Promise.all(Array.from({ length: 40 }, (_, i) => append(i % 2 ? a : b, 'alert.acknowledge', `alr_${i}`, { i })))
    const { rows } = await a.query<{ seq: string, prev_hash: string, hash: string, at: Date }>('SELECT seq, prev_hash, hash, at FROM audit_events ORDER BY seq')
    expect(rows.map((r) => Number(r.seq))).toEqual(Array.from({ length: 40 }, (_, i) => i + 1))
    expect(rows[0]!.prev_hash).toBe('0'.repeat(64))
    rows.slice(1).forEach((row, i) => expect(row.prev_hash).toBe(rows[i]!.hash))
    rows.slice(1).forEach((row, i) => expect(row.at.getTime()).toBeGreaterThanOrEqual(rows[i]!.at.getTime()))
    expect((await a.query('SELECT audit_verify() AS broken')).rows).toEqual([{ broken: null }])
  })

  it('refuses UPDATE, DELETE and TRUNCATE', async () => {
    await append(audit, 'quarantine.lift', 'flood-0001', { reason: 'replaced' })
    await expect(audit.query('UPDATE audit_events SET actor = \'someone-else\'')).rejects.toThrow(/append-only: UPDATE refused/)
    await expect(audit.query('DELETE FROM audit_events')).rejects.toThrow(/append-only: DELETE refused/)
    await expect(audit.query('TRUNCATE audit_events')).rejects.toThrow(/append-only: TRUNCATE refused/)
  })

  it('shows where the chain breaks when someone past the triggers changes or removes an event', async () => {
    await append(audit, 'delivery.requeue', 'webhook')
    await append(audit, 'alert.resolve', 'alr_9', { resolution: 'false positive' })
    const last = Number((await audit.query<{ seq: string }>('SELECT max(seq) AS seq FROM audit_events')).rows[0]!.seq)
    const client = await audit.connect()
    try {
      // A superuser can switch triggers off for a session; the hash chain still tells.
      for (const [tamper, breaksAt] of [
        [`UPDATE audit_events SET detail = '{"resolution": "true positive"}' WHERE seq = ${last}`, last],
        [`UPDATE audit_events SET actor = 'operator:0000' WHERE seq = ${last - 1}`, last - 1],
        [`DELETE FROM audit_events WHERE seq = ${last}`, last],
        [`DELETE FROM audit_events WHERE seq = ${last - 1}`, last - 1],
      ] as const) {
        await client.query('BEGIN')
        await client.query('SET LOCAL session_replication_role = replica')
        await client.query(tamper)
        const { rows } = await client.query<{ broken: string | null }>('SELECT audit_verify() AS broken')
        await client.query('ROLLBACK')
        expect(Number(rows[0]!.broken), tamper).toBe(breaksAt)
      }
      expect((await client.query('SELECT audit_verify() AS broken')).rows).toEqual([{ broken: null }])
    } finally {
      client.release()
    }
  })
})

describe('partition fencing', () => {
  const FENCE = `INSERT INTO partition_fencing (partition, token) VALUES ($1, $2)
    ON CONFLICT (partition) DO UPDATE SET token = excluded.token WHERE partition_fencing.token <= excluded.token
    RETURNING token`
  const SEEN = 'INSERT INTO devices (id, kind, site, last_seen, messages) VALUES ($1, \'flood\', \'riverside\', now(), $2) ON CONFLICT (id) DO UPDATE SET messages = excluded.messages'
  /** A write made for a partition: the fence first, in the same transaction; nothing is written with a stale token. */
  const fencedWrite = async (client: PoolClient, partition: number, token: number, messages: number): Promise<boolean> => {
    await client.query('BEGIN')
    if ((await client.query(FENCE, [partition, token])).rowCount === 0) {
      await client.query('ROLLBACK')
      return false
    }
    await client.query(SEEN, [`fenced-${partition}`, messages])
    await client.query('COMMIT')
    return true
  }

  it('lets the current and newer tokens write, and refuses an older one', async () => {
    const client = await admin.connect()
    try {
      expect(await fencedWrite(client, 3, 1, 10)).toBe(true)
      expect(await fencedWrite(client, 3, 1, 11)).toBe(true)
      expect(await fencedWrite(client, 3, 2, 12)).toBe(true)
      expect(await fencedWrite(client, 3, 1, 99)).toBe(false)
    } finally {
      client.release()
    }
    expect((await admin.query('SELECT messages FROM devices WHERE id = \'fenced-3\'')).rows).toEqual([{ messages: '12' }])
  })

  it('makes the next holder wait for a paused holder\'s transaction, and refuses that holder\'s writes afterwards', async () => {
    const paused = await collector('fence-a').connect()
    const next = await collector('fence-b').connect()
    try {
      await paused.query('BEGIN')
      await paused.query(FENCE, [4, 5])
      await paused.query(SEEN, ['fenced-4', 1])
      // The lease moves (token 6) while A sits in its transaction; B's first write waits for it.
      await next.query('BEGIN')
      const fenced = next.query(FENCE, [4, 6])
      await waitForLockWait(admin, 'fence-b')
      await paused.query('COMMIT')
      expect((await fenced).rowCount).toBe(1)
      await next.query(SEEN, ['fenced-4', 2])
      await next.query('COMMIT')
      // A wakes up and writes with its old token: nothing.
      expect(await fencedWrite(paused, 4, 5, 3)).toBe(false)
    } finally {
      paused.release()
      next.release()
    }
    expect((await admin.query('SELECT messages FROM devices WHERE id = \'fenced-4\'')).rows).toEqual([{ messages: '2' }])
    expect((await admin.query('SELECT token FROM partition_fencing WHERE partition = 4')).rows).toEqual([{ token: '6' }])
  })
})
