/** The fleet store in SQLite: one row per device (`<data-dir>/fleet.db`). */
import { DatabaseSync, type StatementSync } from 'node:sqlite'
import { inTransaction } from '../shared/sqlite.ts'
import type { DeviceRecord, FleetStore } from './fleet-store.ts'

const SCHEMA = `
CREATE TABLE IF NOT EXISTS devices (
  id TEXT PRIMARY KEY, kind TEXT NOT NULL, site TEXT NOT NULL, firmware TEXT, last_seen INTEGER, messages INTEGER NOT NULL
);
`

export class SqliteFleetStore implements FleetStore {
  readonly #db: DatabaseSync
  readonly #upsert: StatementSync

  /** `path`: the SQLite file, created if missing (`:memory:` for none). */
  constructor (options: { path: string }) {
    this.#db = new DatabaseSync(options.path)
    this.#db.exec('PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000;')
    this.#db.exec(SCHEMA)
    this.#upsert = this.#db.prepare('INSERT INTO devices (id, kind, site, firmware, last_seen, messages) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, site = excluded.site, firmware = excluded.firmware, last_seen = excluded.last_seen, messages = excluded.messages')
  }

  load (): DeviceRecord[] {
    return (this.#db.prepare('SELECT * FROM devices').all() as Array<{ id: string, kind: string, site: string, firmware: string | null, last_seen: number | null, messages: number }>)
      .map((row) => ({ id: row.id, kind: row.kind, site: row.site, firmware: row.firmware, lastSeenMs: row.last_seen, messages: row.messages }))
  }

  save (devices: DeviceRecord[]): void {
    if (devices.length === 0) return
    inTransaction(this.#db, () => {
      for (const d of devices) this.#upsert.run(d.id, d.kind, d.site, d.firmware, d.lastSeenMs, d.messages)
    })
  }

  close (): void {
    this.#db.close()
  }
}
