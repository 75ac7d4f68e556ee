/**
 * What detection learned, kept across restarts of a collector that runs
 * alone (`<data-dir>/detection.db`): each device's baselines, last seq,
 * firmware and readings, and its security-event windows. Without it, every
 * restart forgot the fleet: a replay or a firmware downgrade sent just
 * after it was the device's first message (nothing to compare with), rate
 * bursts waited out a new warm-up, and a device that died while PlaceGuard
 * was down was never judged silent, since it was never heard again. A
 * collector group keeps the same state with each partition instead
 * (cluster/detection-snapshots.ts).
 *
 * A snapshot of the whole state, replaced every minute and at a clean
 * stop, and between snapshots the state of the devices that changed,
 * appended every few seconds: a collector killed without warning loses at
 * most those seconds. What the JSON holds is the engine's business
 * (policies/device-snapshot.ts, versioned and validated on import); this
 * store only keeps it. A row that does not parse is skipped and reported,
 * not fatal: the devices it held are learned afresh.
 */
import { DatabaseSync } from 'node:sqlite'
import { inTransaction } from '../shared/sqlite.ts'

const SCHEMA = `
CREATE TABLE IF NOT EXISTS snapshot (id INTEGER PRIMARY KEY CHECK (id = 1), state TEXT NOT NULL, saved_at_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS changes (seq INTEGER PRIMARY KEY AUTOINCREMENT, state TEXT NOT NULL, saved_at_ms INTEGER NOT NULL);
`

export interface SavedDetectionState {
  /** The snapshot, then the changes saved after it, oldest first (parsed JSON, not yet validated). */
  states: unknown[]
  /** When the newest of them was saved; undefined on a first start. */
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
    const rows = [
      ...this.#db.prepare('SELECT state, saved_at_ms FROM snapshot').all(),
      ...this.#db.prepare('SELECT state, saved_at_ms FROM changes ORDER BY seq').all(),
    ] as Array<{ state: string, saved_at_ms: number }>
    const states: unknown[] = []
    const unreadable: string[] = []
    let savedAtMs: number | undefined
    for (const row of rows) {
      try {
        states.push(JSON.parse(row.state))
        savedAtMs = Math.max(savedAtMs ?? 0, row.saved_at_ms)
      } catch (error) {
        unreadable.push((error as Error).message)
      }
    }
    return { states, savedAtMs, unreadable }
  }

  /** The state of the devices that changed since the last save. */
  appendChanges (state: object, savedAtMs: number): void {
    this.#db.prepare('INSERT INTO changes (state, saved_at_ms) VALUES (?, ?)').run(JSON.stringify(state), savedAtMs)
  }

  /** The whole state: replaces the snapshot, and the changes it now holds. */
  saveSnapshot (state: object, savedAtMs: number): void {
    inTransaction(this.#db, () => {
      this.#db.prepare('INSERT INTO snapshot (id, state, saved_at_ms) VALUES (1, ?, ?) ON CONFLICT (id) DO UPDATE SET state = excluded.state, saved_at_ms = excluded.saved_at_ms')
        .run(JSON.stringify(state), savedAtMs)
      this.#db.exec('DELETE FROM changes')
    })
  }

  close (): void {
    if (this.#db.isOpen) this.#db.close()
  }
}
