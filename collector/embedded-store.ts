/**
 * The time-series store used when no InfluxDB is configured: SQLite
 * (node:sqlite) in the data directory, one row per point, kept for
 * `retentionMs`. It answers writes like the InfluxDB sink, so the spool
 * and store writer in front of it are the same.
 */
import { DatabaseSync, type StatementSync } from 'node:sqlite'
import { setImmediate as nextTurn } from 'node:timers/promises'
import { systemClock, type Clock } from '../shared/clock.ts'
import { inTransaction } from '../shared/sqlite.ts'
import type { PointSink, StoredPoint, WriteResult } from './stored-point.ts'

export interface EmbeddedStoreOptions {
  /** SQLite file; created if missing. */
  path: string
  /** Points older than this are pruned; default 7 days. */
  retentionMs?: number
  /** How often old points are pruned; default 10 minutes. */
  pruneIntervalMs?: number
  clock?: Clock
  /** Told about a failed periodic prune; the store itself never logs. */
  onError?: (message: string) => void
}

export interface RecentQuery {
  deviceId?: string
  measurement?: string
  /** Most points returned, newest first; default 100. */
  limit?: number
}

const DAY_MS = 86_400_000
const PRUNE_CHUNK = 10_000

// One row per point, fields as JSON: "recent telemetry of device X" and "last
// N points of measurement M" are each one index range read, newest first.
const SCHEMA = `
CREATE TABLE IF NOT EXISTS points (
  id          INTEGER PRIMARY KEY,
  measurement TEXT NOT NULL,
  tags        TEXT NOT NULL,   -- JSON, keys sorted: part of the point's identity
  device      TEXT,            -- tags.device, copied out to be indexed
  ts          INTEGER NOT NULL,
  fields      TEXT NOT NULL,   -- JSON object
  ns          INTEGER NOT NULL DEFAULT 0 -- StoredPoint.ordinalNs: events of one millisecond are distinct points
);
CREATE INDEX IF NOT EXISTS points_by_device ON points (device, ts);
CREATE INDEX IF NOT EXISTS points_by_time ON points (ts);
`
// InfluxDB's identity of a point (time to the nanosecond); also serves "last N points of measurement M".
const IDENTITY = 'CREATE UNIQUE INDEX IF NOT EXISTS points_identity_ns ON points (measurement, ts, ns, tags)'

interface Row { measurement: string, tags: string, ts: number, ns: number, fields: string }

// SQLite result codes (low byte of the extended code) that a later attempt may not meet.
const TRANSIENT_SQLITE_CODES = new Set([5 /* BUSY */, 6 /* LOCKED */, 10 /* IOERR */, 13 /* FULL */])

export class EmbeddedStore implements PointSink {
  readonly retentionMs: number
  readonly #db: DatabaseSync
  readonly #upsert: StatementSync
  readonly #pruneChunk: StatementSync
  readonly #clock: Clock
  readonly #timer: NodeJS.Timeout
  #closed = false

  constructor (options: EmbeddedStoreOptions) {
    this.retentionMs = options.retentionMs ?? 7 * DAY_MS
    this.#clock = options.clock ?? systemClock
    this.#db = new DatabaseSync(options.path)
    // synchronous = FULL: once a write succeeds the spool forgets those points,
    // so this commit must survive a power loss as the spool's own does.
    this.#db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;')
    this.#db.exec(SCHEMA)
    // A store made before events had their own nanosecond: add the column, and identify points by it.
    const columns = this.#db.prepare('PRAGMA table_info(points)').all() as Array<{ name: string }>
    if (!columns.some((column) => column.name === 'ns')) this.#db.exec('ALTER TABLE points ADD COLUMN ns INTEGER NOT NULL DEFAULT 0')
    this.#db.exec(`DROP INDEX IF EXISTS points_identity; ${IDENTITY}`)
    // Like InfluxDB, the same measurement, tags and time is the same point: a
    // rewrite (redelivered message, retried batch) merges its fields, never duplicates it.
    this.#upsert = this.#db.prepare(`INSERT INTO points (measurement, tags, device, ts, ns, fields) VALUES (?, ?, ?, ?, ?, ?)
      ON CONFLICT (measurement, ts, ns, tags) DO UPDATE SET fields = json_patch(fields, excluded.fields)`)
    this.#pruneChunk = this.#db.prepare('DELETE FROM points WHERE id IN (SELECT id FROM points WHERE ts < ? LIMIT ?)')
    const onError = options.onError ?? (() => {})
    this.#timer = setInterval(() => {
      this.prune().catch((error: unknown) => onError(`pruning the embedded store failed: ${(error as Error).message}`))
    }, options.pruneIntervalMs ?? 10 * 60_000).unref()
  }

  async write (points: StoredPoint[]): Promise<WriteResult> {
    if (this.#closed) return { outcome: 'failure', error: 'the embedded store is closed' }
    try {
      inTransaction(this.#db, () => {
        for (const point of points) {
          this.#upsert.run(point.measurement, canonicalTags(point.tags), point.tags.device ?? null, point.timestampMs, point.ordinalNs ?? 0, JSON.stringify(point.fields))
        }
      })
      return { outcome: 'success' }
    } catch (error) {
      const { message, errcode } = error as { message: string, errcode?: number }
      const transient = errcode !== undefined && TRANSIENT_SQLITE_CODES.has(errcode & 0xff)
      return { outcome: transient ? 'retryable' : 'failure', error: `embedded store: ${message}` }
    }
  }

  /** The newest points of a device and/or a measurement, newest first. */
  recent (query: RecentQuery = {}): StoredPoint[] {
    const conditions: string[] = []
    const values: Array<string | number> = []
    if (query.deviceId !== undefined) { conditions.push('device = ?'); values.push(query.deviceId) }
    if (query.measurement !== undefined) { conditions.push('measurement = ?'); values.push(query.measurement) }
    const where = conditions.length > 0 ? `WHERE ${conditions.join(' AND ')}` : ''
    const rows = this.#db.prepare(`SELECT measurement, tags, ts, ns, fields FROM points ${where} ORDER BY ts DESC, ns DESC LIMIT ?`)
      .all(...values, query.limit ?? 100) as unknown as Row[]
    return rows.map((row) => ({
      measurement: row.measurement,
      tags: JSON.parse(row.tags) as StoredPoint['tags'],
      fields: JSON.parse(row.fields) as StoredPoint['fields'],
      timestampMs: row.ts,
      ...(row.ns === 0 ? {} : { ordinalNs: row.ns }),
    }))
  }

  count (measurement?: string): number {
    const row = (measurement === undefined
      ? this.#db.prepare('SELECT COUNT(*) AS count FROM points').get()
      : this.#db.prepare('SELECT COUNT(*) AS count FROM points WHERE measurement = ?').get(measurement)) as { count: number }
    return row.count
  }

  /**
   * Deletes points older than the retention, in chunks with a turn of the
   * event loop between them: node:sqlite is synchronous, and a week-old hour
   * of a 10k-device fleet is millions of rows. Resolves with the number deleted.
   */
  async prune (): Promise<number> {
    const cutoff = this.#clock.now() - this.retentionMs
    let deleted = 0
    while (!this.#closed) {
      const { changes } = this.#pruneChunk.run(cutoff, PRUNE_CHUNK)
      deleted += Number(changes)
      if (changes < PRUNE_CHUNK) break
      await nextTurn()
    }
    return deleted
  }

  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    clearInterval(this.#timer)
    this.#db.close()
  }
}

function canonicalTags (tags: Record<string, string>): string {
  return JSON.stringify(Object.fromEntries(Object.entries(tags).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))))
}
