/**
 * The collector's durable FIFO of points between the MQTT acknowledgement
 * and the time-series store, in SQLite: the TelemetrySpool
 * (telemetry-spool.ts) the collector runs on. A point leaves it only once
 * the store has accepted it, so neither a store outage nor a collector
 * restart loses telemetry (the influx client alone keeps unsent lines in
 * memory only).
 */
import { PlaceGuardError } from '../shared/errors.ts'
import { inTransaction } from '../shared/sqlite.ts'
import { dirname } from 'node:path'
import { DatabaseSync, type StatementSync } from 'node:sqlite'
import { EventOrdinals } from './points.ts'
import { toLineProtocol, type StoredPoint } from './stored-point.ts'
import { type RejectedPoint, type SpoolBatch, SpoolFullError, type TelemetrySpool } from './telemetry-spool.ts'

export { SpoolFullError, type SpoolBatch }

export interface SpoolOptions {
  /** SQLite file; created if missing. */
  path: string
  /** Largest total of stored JSON bytes; an append beyond it throws SpoolFullError. */
  maxBytes: number
}

/**
 * Thrown by `append` when SQLite cannot write (SQLITE_FULL from the database,
 * its WAL or journal; SQLITE_IOERR): nothing of the batch was stored.
 */
export class SpoolUnwritableError extends PlaceGuardError {
  constructor (path: string, cause: Error) {
    super('PG_ERR_SPOOL_UNWRITABLE', `cannot write the spool ${path} (data directory ${dirname(path)}): ${cause.message}`, {
      field: 'dataDir', hint: 'free space on the data directory\'s disk or fix its I/O error; messages stay at the broker meanwhile', cause,
    })
    this.name = 'SpoolUnwritableError'
  }
}

// AUTOINCREMENT: ids are never reused, so an `uptoId` from an earlier peek
// can never reach points appended after the spool was emptied.
const SCHEMA = `
CREATE TABLE IF NOT EXISTS points (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL);
-- Points the store refused for good (e.g. a field type conflict): kept, not lost, and out of the FIFO's way.
CREATE TABLE IF NOT EXISTS rejected (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL, reason TEXT NOT NULL, at INTEGER NOT NULL);
`
const BODY_BYTES = 'COALESCE(SUM(length(CAST(body AS BLOB))), 0)'

export class Spool implements TelemetrySpool {
  readonly maxBytes: number
  readonly path: string
  readonly #db: DatabaseSync
  readonly #insert: StatementSync
  readonly #head: StatementSync
  readonly #measureUpTo: StatementSync
  readonly #deleteUpTo: StatementSync
  readonly #insertRejected: StatementSync
  readonly #ordinals = new EventOrdinals()
  #bytes: number
  #pendingPoints: number

  constructor (options: SpoolOptions) {
    if (!Number.isSafeInteger(options.maxBytes) || options.maxBytes <= 0) {
      throw new RangeError(`spool maxBytes must be a positive integer, got ${options.maxBytes}`)
    }
    this.maxBytes = options.maxBytes
    this.path = options.path
    this.#db = new DatabaseSync(options.path)
    // WAL with synchronous = FULL syncs the log at every commit: once `append`
    // returns, its points survive kill -9 and power loss, and the caller may
    // acknowledge the MQTT messages they came from.
    this.#db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;')
    this.#db.exec(SCHEMA)
    this.#insert = this.#db.prepare('INSERT INTO points (body) VALUES (?)')
    this.#head = this.#db.prepare('SELECT id, body FROM points ORDER BY id LIMIT ?')
    this.#measureUpTo = this.#db.prepare(`SELECT COUNT(*) AS count, ${BODY_BYTES} AS bytes FROM points WHERE id <= ?`)
    this.#deleteUpTo = this.#db.prepare('DELETE FROM points WHERE id <= ?')
    this.#insertRejected = this.#db.prepare('INSERT INTO rejected (body, reason, at) VALUES (?, ?, ?)')
    const totals = this.#db.prepare(`SELECT COUNT(*) AS count, ${BODY_BYTES} AS bytes FROM points`).get() as { count: number, bytes: number }
    this.#pendingPoints = totals.count
    this.#bytes = totals.bytes
  }

  get pendingPoints (): number { return this.#pendingPoints }
  /** UTF-8 bytes of the stored points' JSON: what `maxBytes` bounds (the file itself is larger). */
  get bytes (): number { return this.#bytes }
  get nearFull (): boolean { return this.#bytes >= this.maxBytes * 0.9 }

  /** Stores the whole batch durably, or nothing: SpoolFullError past the bound, SpoolUnwritableError when the disk fails. */
  append (points: StoredPoint[]): void {
    if (points.length === 0) return
    // Every path to the store passes here (telemetry, events, alerts): each event gets its own point.
    for (const point of points) this.#ordinals.assign(point)
    const bodies = points.map(serialize)
    const bytes = bodies.reduce((sum, body) => sum + Buffer.byteLength(body), 0)
    if (this.#bytes + bytes > this.maxBytes) {
      throw new SpoolFullError(`spool full: ${this.#bytes} of ${this.maxBytes} bytes used, a batch of ${points.length} points needs ${bytes} more`)
    }
    try {
      inTransaction(this.#db, () => {
        for (const body of bodies) this.#insert.run(body)
      })
    } catch (error) {
      throw new SpoolUnwritableError(this.path, error as Error)
    }
    this.#bytes += bytes
    this.#pendingPoints += points.length
  }

  /** The oldest points, at most `maxPoints`, without removing them. */
  peek (maxPoints: number): SpoolBatch | undefined {
    const rows = this.#head.all(maxPoints) as Array<{ id: number, body: string }>
    const last = rows.at(-1)
    if (!last) return undefined
    return { uptoId: last.id, points: rows.map((row) => JSON.parse(row.body) as StoredPoint) }
  }

  /**
   * Forgets every point up to and including `uptoId`; the `rejected` ones
   * (refused by the store for good) move to the rejected table in the same
   * transaction instead of vanishing.
   */
  remove (uptoId: number, rejected: Array<{ point: StoredPoint, reason: string }> = []): void {
    const removed = inTransaction(this.#db, () => {
      const totals = this.#measureUpTo.get(uptoId) as { count: number, bytes: number }
      for (const { point, reason } of rejected) this.#insertRejected.run(serialize(point), reason, Date.now())
      this.#deleteUpTo.run(uptoId)
      return totals
    })
    this.#bytes -= removed.bytes
    this.#pendingPoints -= removed.count
  }

  /** Points the store refused for good, oldest first. */
  rejected (limit = 100): RejectedPoint[] {
    return (this.#db.prepare('SELECT body, reason, at FROM rejected ORDER BY id LIMIT ?').all(limit) as Array<{ body: string, reason: string, at: number }>)
      .map((row) => ({ point: JSON.parse(row.body) as StoredPoint, reason: row.reason, at: new Date(row.at).toISOString() }))
  }

  get rejectedPoints (): number {
    return (this.#db.prepare('SELECT COUNT(*) AS count FROM rejected').get() as { count: number }).count
  }

  close (): void {
    this.#db.close()
  }
}

/**
 * JSON of exactly the point's properties. Converting to line protocol first
 * refuses, before it is stored, a point the store could never accept
 * (NaN, no fields, a fractional timestamp): it would block the FIFO forever.
 */
function serialize (point: StoredPoint): string {
  toLineProtocol(point)
  const { measurement, tags, fields, timestampMs, ordinalNs } = point
  return JSON.stringify({ measurement, tags, fields, timestampMs, ordinalNs })
}
