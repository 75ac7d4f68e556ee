/**
 * What detection learned, kept across restarts of a collector that runs
 * alone (`<data-dir>/detection.db`): each device's baselines, last seq,
 * firmware and readings, its security-event windows and its LoRaWAN
 * state. Without it, every restart forgot the fleet: a replay or a
 * firmware downgrade sent just after it was the device's first message
 * (nothing to compare with), rate bursts waited out a new warm-up, and a
 * device that died while PlaceGuard was down was never judged silent,
 * since it was never heard again. A collector group keeps the same state
 * with each partition instead (cluster/detection-snapshots.ts).
 *
 * One row per device (and per window, per LoRaWAN device), replaced when
 * the device's state changes: a save writes only what changed, whatever
 * the fleet's size, and nothing grows but the fleet. What a record holds
 * is the engine's business (policies/device-snapshot.ts, versioned and
 * validated on import); this store only keeps it. A row that does not
 * parse is skipped and reported: that device is learned afresh.
 */
import { DatabaseSync } from 'node:sqlite'
import type { DeviceSnapshot } from '../policies/index.ts'
import { inTransaction } from '../shared/sqlite.ts'

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS devices (id TEXT PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS windows (policy TEXT NOT NULL, key TEXT NOT NULL, expires_at_ms INTEGER NOT NULL, record TEXT NOT NULL, PRIMARY KEY (policy, key));
CREATE TABLE IF NOT EXISTS lorawan (id TEXT PRIMARY KEY, record TEXT NOT NULL);
`

export interface SavedDetectionState {
  /** Everything kept, as one snapshot (parsed, not yet validated); undefined on a first start. */
  snapshot: DeviceSnapshot | undefined
  /** When it was last saved. */
  savedAtMs: number | undefined
  /** Rows that did not parse, and why. */
  unreadable: string[]
}

export class DetectionStateFile {
  readonly #db: DatabaseSync

  constructor (path: string) {
    this.#db = new DatabaseSync(path)
    // Advisory state: a power cut may lose the last commits, never the file.
    this.#db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;')
    this.#db.exec(SCHEMA)
  }

  load (): SavedDetectionState {
    const meta = new Map((this.#db.prepare('SELECT name, value FROM meta').all() as Array<{ name: string, value: number }>).map((row) => [row.name, row.value]))
    const savedAtMs = meta.get('saved_at_ms')
    if (savedAtMs === undefined) return { snapshot: undefined, savedAtMs: undefined, unreadable: [] }
    const unreadable: string[] = []
    const parsed = <T>(table: string): T[] => {
      const records: T[] = []
      for (const row of this.#db.prepare(`SELECT record FROM ${table}`).all() as Array<{ record: string }>) {
        try {
          records.push(JSON.parse(row.record) as T)
        } catch (error) {
          unreadable.push(`${table}: ${(error as Error).message}`)
        }
      }
      return records
    }
    const snapshot = {
      version: meta.get('version'), takenAtMs: savedAtMs,
      devices: parsed('devices'), windows: parsed('windows'), lorawan: parsed('lorawan'),
    } as DeviceSnapshot
    return { snapshot, savedAtMs, unreadable }
  }

  /** Replaces the rows of what `state` holds (an export of the changed devices, or of all), in one transaction. */
  save (state: DeviceSnapshot): void {
    const device = this.#db.prepare('INSERT INTO devices (id, record) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET record = excluded.record')
    const window = this.#db.prepare('INSERT INTO windows (policy, key, expires_at_ms, record) VALUES (?, ?, ?, ?) ON CONFLICT (policy, key) DO UPDATE SET expires_at_ms = excluded.expires_at_ms, record = excluded.record')
    const lorawan = this.#db.prepare('INSERT INTO lorawan (id, record) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET record = excluded.record')
    const meta = this.#db.prepare('INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value')
    inTransaction(this.#db, () => {
      for (const record of state.devices) device.run(record.deviceId, JSON.stringify(record))
      for (const record of state.windows) window.run(record.policy, record.key, record.expiresAtMs, JSON.stringify(record))
      for (const record of state.lorawan ?? []) lorawan.run(record.deviceId, JSON.stringify(record))
      // A window past its end holds nothing the engine would take back.
      this.#db.prepare('DELETE FROM windows WHERE expires_at_ms < ?').run(state.takenAtMs)
      meta.run('version', state.version)
      meta.run('saved_at_ms', state.takenAtMs)
    })
  }

  close (): void {
    if (this.#db.isOpen) this.#db.close()
  }
}
