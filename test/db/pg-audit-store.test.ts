/**
 * PgAuditStore (audit/pg-audit-store.ts) against a real PostgreSQL: the
 * same contract as SQLite's, each `open` a collector with a pool of its
 * own; the guards are the migration's triggers, and the one past them is
 * the superuser (`ALTER TABLE … DISABLE TRIGGER USER`, as any superuser
 * can). Then what ties the two stores together: the database's hashes are
 * the ones audit/chain.ts computes for SQLite.
 */
import { describe, expect, it } from 'vitest'
import { chainHash, PgAuditStore } from '../../audit/index.ts'
import type { Pool } from '../../db/index.ts'
import { auditStoreContract, type AuditPlace } from '../audit/audit-store.contract.ts'
import { pgPlaces } from '../helpers/pg-place.ts'

const pg = pgPlaces('audit')

function pgAuditPlace (): AuditPlace {
  const place = pg.newPlace((pool) => new PgAuditStore({ pool }))()
  // The test's database user created the cluster (initdb -U): a superuser, as an attacker past the guards would be.
  let admin: Pool | undefined
  const superuser = () => admin ??= pg.pool('audit-superuser', 1)
  return {
    ...place,
    plainSql: async (statement) => { await pg.pool('audit-client', 1).query(statement) },
    pastTheGuards: async (statement) => {
      const client = await superuser().connect()
      try {
        await client.query('BEGIN')
        await client.query('ALTER TABLE audit_events DISABLE TRIGGER USER; ALTER TABLE audit_head DISABLE TRIGGER USER')
        await client.query(statement)
        await client.query('ALTER TABLE audit_events ENABLE TRIGGER USER; ALTER TABLE audit_head ENABLE TRIGGER USER')
        await client.query('COMMIT')
      } catch (error) {
        await client.query('ROLLBACK')
        throw error
      } finally {
        client.release()
      }
    },
  }
}

auditStoreContract('PostgreSQL', pgAuditPlace)

describe('PgAuditStore', () => {
  it('answers entries whose hashes audit/chain.ts computes alike: one chain whichever store keeps it', async () => {
    const pool = pg.pool('audit-cross-check')
    const store = new PgAuditStore({ pool })
    await store.append({ actor: 'operator:3f2a1b0c', action: 'alert.comment', subject: 'alr-1', detail: { text: 'tab\there "q" — é', bb: 2, a: [1, null, true], nested: { z: 1, yy: 'x' } }, from: '127.0.0.1' })
    await store.append({ actor: 'operator:3f2a1b0c', action: 'policy.reload' })
    const { rows } = await pool.query<{ seq: string, prev_hash: string, at_us: string, actor: string, action: string, subject: string | null, detail: unknown, hash: string }>(
      'SELECT seq, prev_hash, floor(extract(epoch FROM at) * 1000000)::bigint::text AS at_us, actor, action, subject, detail, hash FROM audit_events ORDER BY seq')
    expect(rows).toHaveLength(2)
    for (const row of rows) {
      expect(chainHash({ seq: Number(row.seq), prevHash: row.prev_hash, atMicros: BigInt(row.at_us), actor: row.actor, action: row.action, subject: row.subject, detail: row.detail })).toBe(row.hash)
    }
  })

  it('refuses to move or delete the head except by appending (0004_audit_head_guard)', async () => {
    const pool = pg.pool('audit-head-guard')
    const store = new PgAuditStore({ pool })
    await store.append({ actor: 'operator:1', action: 'policy.reload' })
    for (const statement of ['DELETE FROM audit_head', 'TRUNCATE audit_head', 'UPDATE audit_head SET seq = 0', "UPDATE audit_head SET hash = repeat('0', 64)"]) {
      await expect(pool.query(statement), statement).rejects.toThrow(/head moves only when an entry is appended/)
    }
    await store.append({ actor: 'operator:1', action: 'policy.reload' })
    expect(await store.verify()).toMatchObject({ intact: true, entries: 2 })
  })

  it('answers a missing head as a break: audit_verify() alone would read it as whole', async () => {
    const pool = pg.pool('audit-headless')
    const store = new PgAuditStore({ pool })
    await store.append({ actor: 'operator:1', action: 'policy.reload' })
    // Past the guard, as a superuser can go.
    await pool.query('BEGIN; ALTER TABLE audit_head DISABLE TRIGGER USER; DELETE FROM audit_head; ALTER TABLE audit_head ENABLE TRIGGER USER; COMMIT')
    expect((await pool.query('SELECT audit_verify() AS broken')).rows).toEqual([{ broken: null }])
    expect(await store.verify()).toMatchObject({ intact: false, entries: 1, brokenAt: 2, reason: 'head-moved', message: expect.stringMatching(/head \(audit_head\) is missing/) })
    await expect(store.append({ actor: 'operator:1', action: 'policy.reload' })).rejects.toThrow()
  })
})
