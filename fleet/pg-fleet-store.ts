/**
 * The fleet store in PostgreSQL, shared by a collector group: the `devices`
 * table of db/migrations/0001_initial.sql, one row per device. Each
 * collector saves the devices whose telemetry it receives (the partitions
 * it holds) and reads what the others saved, so every collector's fleet
 * view is the whole group's.
 *
 * A save is one statement, INSERT … SELECT FROM unnest(…) ON CONFLICT (id)
 * DO UPDATE, merging as fleet-store.ts says: last_seen by GREATEST, kind,
 * site and firmware from the newest sighting, messages summed. Two
 * collectors saving the same device at once (a partition move) are
 * serialized by the row's lock and both land, in either order, with the
 * same result. The rows go in id order, so two saves over overlapping
 * devices lock them in the same order and cannot deadlock.
 *
 * Every save stamps its rows with its transaction (`xact_id`, migration
 * 0003_fleet_group); a read runs under a REPEATABLE READ snapshot, answers
 * the rows whose transaction the previous position's snapshot did not see,
 * and its own snapshot becomes the next position. So a reader takes every
 * save once, whatever the commit order or the collectors' clocks, and the
 * index on xact_id skips the rows saved before.
 *
 * Times from the interface are ms epochs; last_seen is timestamptz.
 * The store does not own its pool (`close` leaves it open).
 */
import type { Pool } from 'pg'
import { inPgTransaction } from '../shared/postgres.ts'
import { type AsyncFleetStore, checkUpdates, type DeviceChanges, type DeviceRecord, type DeviceUpdate } from './fleet-store.ts'

export interface PgFleetStoreOptions {
  /** The group's pool (db/pool.ts), migrated (db/migrate.ts); the caller ends it. */
  pool: Pool
}

/** An ms epoch as timestamptz ($n::float8, exact to the millisecond). */
const at = (param: string) => `to_timestamp(${param}::float8 / 1000)`

/** The save at or after the kept sighting brings kind, site and firmware; one never seen (NULL) does not displace a sighting. */
const NEWER = '(devices.last_seen IS NULL OR excluded.last_seen >= devices.last_seen)'
const SAVE = `
INSERT INTO devices (id, kind, site, firmware, last_seen, messages)
SELECT id, kind, site, firmware, ${at('ms')}, messages
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::float8[], $6::bigint[]) AS d (id, kind, site, firmware, ms, messages)
ORDER BY id
ON CONFLICT (id) DO UPDATE SET
  kind = CASE WHEN ${NEWER} THEN excluded.kind ELSE devices.kind END,
  site = CASE WHEN ${NEWER} THEN excluded.site ELSE devices.site END,
  firmware = CASE WHEN ${NEWER} THEN excluded.firmware ELSE devices.firmware END,
  last_seen = GREATEST(devices.last_seen, excluded.last_seen),
  messages = devices.messages + excluded.messages,
  xact_id = pg_current_xact_id()`

const SELECT = 'SELECT id, kind, site, firmware, last_seen, messages::float8 AS messages FROM devices'
interface Row { id: string, kind: string, site: string, firmware: string | null, last_seen: Date | null, messages: number }
const record = (row: Row): DeviceRecord => ({ id: row.id, kind: row.kind, site: row.site, firmware: row.firmware, lastSeenMs: row.last_seen?.getTime() ?? null, messages: row.messages })

export class PgFleetStore implements AsyncFleetStore {
  readonly #pool: Pool

  constructor (options: PgFleetStoreOptions) {
    this.#pool = options.pool
  }

  load (): Promise<DeviceChanges> {
    return this.#read(SELECT, [])
  }

  loadChangedSince (position: string): Promise<DeviceChanges> {
    return this.#read(`${SELECT} WHERE xact_id >= pg_snapshot_xmin($1::pg_snapshot) AND NOT pg_visible_in_snapshot(xact_id, $1::pg_snapshot)`, [position])
  }

  async save (devices: DeviceUpdate[]): Promise<void> {
    checkUpdates(devices)
    if (devices.length === 0) return
    await this.#pool.query(SAVE, [
      devices.map((d) => d.id), devices.map((d) => d.kind), devices.map((d) => d.site), devices.map((d) => d.firmware),
      devices.map((d) => d.lastSeenMs), devices.map((d) => d.newMessages),
    ])
  }

  /** The pool is the caller's (shared with the group's other stores): nothing to release here. */
  async close (): Promise<void> {}

  /** The rows and the snapshot they were read under, which is the next read's position. */
  #read (select: string, values: unknown[]): Promise<DeviceChanges> {
    return inPgTransaction(this.#pool, async (client) => {
      await client.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY')
      const { rows: [snapshot] } = await client.query<{ position: string }>('SELECT pg_current_snapshot()::text AS position')
      const { rows } = await client.query<Row>(select, values)
      return { devices: rows.map(record), position: snapshot!.position }
    })
  }
}
