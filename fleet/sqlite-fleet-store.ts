/**
 * The fleet store in SQLite: one row per device (`<data-dir>/fleet.db`).
 * `changed` numbers the saves (each save one more than the highest so far,
 * drawn inside its write transaction, so in commit order): a position is
 * the highest a read has seen.
 */
import { DatabaseSync, type StatementSync } from 'node:sqlite'
import { inTransaction } from '../shared/sqlite.ts'
import { checkUpdates, type DeviceChanges, type DeviceRecord, type DeviceUpdate, type FleetStore } from './fleet-store.ts'

const SCHEMA = `
CREATE TABLE IF NOT EXISTS devices (
  id TEXT PRIMARY KEY, kind TEXT NOT NULL, site TEXT NOT NULL, firmware TEXT, last_seen INTEGER, messages INTEGER NOT NULL
);
`
/** Files written before saves were numbered get the column (0: before any read's position). */
const CHANGED = `
ALTER TABLE devices ADD COLUMN changed INTEGER NOT NULL DEFAULT 0;
`

/** The save at or after the kept sighting brings kind, site and firmware (fleet-store.ts); SQLite's max() would answer NULL for a device never seen. */
const NEWER = '(devices.last_seen IS NULL OR excluded.last_seen >= devices.last_seen)'
const UPSERT = `INSERT INTO devices (id, kind, site, firmware, last_seen, messages, changed) VALUES (?, ?, ?, ?, ?, ?, ?)
  ON CONFLICT (id) DO UPDATE SET
    changed = excluded.changed,
    kind = CASE WHEN ${NEWER} THEN excluded.kind ELSE devices.kind END,
    site = CASE WHEN ${NEWER} THEN excluded.site ELSE devices.site END,
    firmware = CASE WHEN ${NEWER} THEN excluded.firmware ELSE devices.firmware END,
    last_seen = CASE WHEN ${NEWER} THEN excluded.last_seen ELSE devices.last_seen END,
    messages = devices.messages + excluded.messages`

interface Row { id: string, kind: string, site: string, firmware: string | null, last_seen: number | null, messages: number, changed: number }
const record = (row: Row): DeviceRecord => ({ id: row.id, kind: row.kind, site: row.site, firmware: row.firmware, lastSeenMs: row.last_seen, messages: row.messages })
/** The rows, and the position after them: the highest save number among them, or the one before. */
const changes = (rows: Row[], from: number): DeviceChanges => ({ devices: rows.map(record), position: String(rows.reduce((max, row) => Math.max(max, row.changed), from)) })

export class SqliteFleetStore implements FleetStore {
  readonly #db: DatabaseSync
  readonly #upsert: StatementSync

  /** `path`: the SQLite file, created if missing (`:memory:` for none). */
  constructor (options: { path: string }) {
    this.#db = new DatabaseSync(options.path)
    this.#db.exec('PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000;')
    this.#db.exec(SCHEMA)
    const columns = this.#db.prepare('PRAGMA table_info(devices)').all() as Array<{ name: string }>
    if (!columns.some((column) => column.name === 'changed')) this.#db.exec(CHANGED)
    this.#upsert = this.#db.prepare(UPSERT)
  }

  load (): DeviceChanges {
    return changes(this.#db.prepare('SELECT * FROM devices').all() as unknown as Row[], 0)
  }

  loadChangedSince (position: string): DeviceChanges {
    if (!/^\d{1,15}$/.test(position)) throw new TypeError(`fleet store: ${JSON.stringify(position)} is not a position this store gave (a whole number)`)
    const from = Number(position)
    return changes(this.#db.prepare('SELECT * FROM devices WHERE changed > ?').all(from) as unknown as Row[], from)
  }

  save (devices: DeviceUpdate[]): void {
    checkUpdates(devices)
    if (devices.length === 0) return
    inTransaction(this.#db, () => {
      // Drawn under the write lock: a later commit always has a higher number.
      const { next } = this.#db.prepare('SELECT coalesce(max(changed), 0) + 1 AS next FROM devices').get() as { next: number }
      for (const d of devices) this.#upsert.run(d.id, d.kind, d.site, d.firmware, d.lastSeenMs, d.newMessages, next)
    })
  }

  close (): void {
    this.#db.close()
  }
}
