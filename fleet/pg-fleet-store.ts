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
 * Times from the interface are ms epochs; last_seen is timestamptz.
 * The store does not own its pool (`close` leaves it open).
 */
import type { Pool } from 'pg'
import { type AsyncFleetStore, checkUpdates, type DeviceRecord, type DeviceUpdate } from './fleet-store.ts'

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
  messages = devices.messages + excluded.messages`

const SELECT = 'SELECT id, kind, site, firmware, last_seen, messages::float8 AS messages FROM devices'
interface Row { id: string, kind: string, site: string, firmware: string | null, last_seen: Date | null, messages: number }
const record = (row: Row): DeviceRecord => ({ id: row.id, kind: row.kind, site: row.site, firmware: row.firmware, lastSeenMs: row.last_seen?.getTime() ?? null, messages: row.messages })

export class PgFleetStore implements AsyncFleetStore {
  readonly #pool: Pool

  constructor (options: PgFleetStoreOptions) {
    this.#pool = options.pool
  }

  async load (): Promise<DeviceRecord[]> {
    return (await this.#pool.query<Row>(SELECT)).rows.map(record)
  }

  /**
   * No index serves last_seen (a released migration is not edited): the
   * table is scanned, and what saves is sending and parsing only the
   * devices seen lately.
   */
  async loadSeenSince (sinceMs: number): Promise<DeviceRecord[]> {
    return (await this.#pool.query<Row>(`${SELECT} WHERE last_seen >= ${at('$1')}`, [sinceMs])).rows.map(record)
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
}
