/** The fleet store in SQLite: one row per device (`<data-dir>/fleet.db`). */
import { DatabaseSync, type StatementSync } from 'node:sqlite'
import { inTransaction } from '../shared/sqlite.ts'
import { checkUpdates, type DeviceRecord, type DeviceUpdate, type FleetStore } from './fleet-store.ts'

const SCHEMA = `
CREATE TABLE IF NOT EXISTS devices (
  id TEXT PRIMARY KEY, kind TEXT NOT NULL, site TEXT NOT NULL, firmware TEXT, last_seen INTEGER, messages INTEGER NOT NULL
);
`

/** The save at or after the kept sighting brings kind, site and firmware (fleet-store.ts); SQLite's max() would answer NULL for a device never seen. */
const NEWER = '(devices.last_seen IS NULL OR excluded.last_seen >= devices.last_seen)'
const UPSERT = `INSERT INTO devices (id, kind, site, firmware, last_seen, messages) VALUES (?, ?, ?, ?, ?, ?)
  ON CONFLICT (id) DO UPDATE SET
    kind = CASE WHEN ${NEWER} THEN excluded.kind ELSE devices.kind END,
    site = CASE WHEN ${NEWER} THEN excluded.site ELSE devices.site END,
    firmware = CASE WHEN ${NEWER} THEN excluded.firmware ELSE devices.firmware END,
    last_seen = CASE WHEN ${NEWER} THEN excluded.last_seen ELSE devices.last_seen END,
    messages = devices.messages + excluded.messages`

interface Row { id: string, kind: string, site: string, firmware: string | null, last_seen: number | null, messages: number }
const record = (row: Row): DeviceRecord => ({ id: row.id, kind: row.kind, site: row.site, firmware: row.firmware, lastSeenMs: row.last_seen, messages: row.messages })

export class SqliteFleetStore implements FleetStore {
  readonly #db: DatabaseSync
  readonly #upsert: StatementSync

  /** `path`: the SQLite file, created if missing (`:memory:` for none). */
  constructor (options: { path: string }) {
    this.#db = new DatabaseSync(options.path)
    this.#db.exec('PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000;')
    this.#db.exec(SCHEMA)
    this.#upsert = this.#db.prepare(UPSERT)
  }

  load (): DeviceRecord[] {
    return (this.#db.prepare('SELECT * FROM devices').all() as unknown as Row[]).map(record)
  }

  loadSeenSince (sinceMs: number): DeviceRecord[] {
    return (this.#db.prepare('SELECT * FROM devices WHERE last_seen >= ?').all(sinceMs) as unknown as Row[]).map(record)
  }

  save (devices: DeviceUpdate[]): void {
    checkUpdates(devices)
    if (devices.length === 0) return
    inTransaction(this.#db, () => {
      for (const d of devices) this.#upsert.run(d.id, d.kind, d.site, d.firmware, d.lastSeenMs, d.newMessages)
    })
  }

  close (): void {
    this.#db.close()
  }
}
