/**
 * The audit trail in SQLite (`<data-dir>/audit.db`): the same tables as
 * PostgreSQL's (`audit_head`, `audit_events`), the hash chain computed
 * here (chain.ts) since SQLite has no sha256, and the rules in triggers so
 * that any client of the file, not only this class, meets them:
 *   - an entry is inserted only at the head: seq = head + 1, prev_hash =
 *     the head's hash; the head then follows it, and moves no other way;
 *   - UPDATE and DELETE of an entry, and DELETE of the head, are refused
 *     (RAISE(ABORT)).
 * Someone with write access to the file can drop the triggers; the chain
 * then shows what they changed (`verify`), unless they rebuild every hash
 * after it — which a copy of the head kept elsewhere shows (docs/audit-trail.md).
 *
 * An append reads the head and writes the entry in one IMMEDIATE
 * transaction, so two processes appending to one file make one chain;
 * synchronous = FULL, so an entry that was answered survives a power cut.
 */
import { DatabaseSync } from 'node:sqlite'
import { systemClock, type Clock } from '../shared/clock.ts'
import { inTransaction } from '../shared/sqlite.ts'
import type { AuditEntry, AuditEvent, AuditPage, AuditQuery, AuditStore, AuditVerdict } from './audit-store.ts'
import { canonicalJson, chainHash, type ChainHead, classifyBreak, firstBreak, GENESIS_HASH, verdict } from './chain.ts'
import { storedDetail, withoutFrom } from './event.ts'

const SCHEMA = `
CREATE TABLE IF NOT EXISTS audit_head (
  one INTEGER PRIMARY KEY CHECK (one = 1),
  seq INTEGER NOT NULL,
  hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_events (
  seq INTEGER PRIMARY KEY,
  at TEXT NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  subject TEXT,
  detail TEXT NOT NULL,
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL UNIQUE
);
CREATE INDEX IF NOT EXISTS audit_events_by_subject ON audit_events (subject, seq);
-- A new trail starts at the genesis head; a trail whose head is gone stays without one (verify says so, append refuses).
INSERT INTO audit_head (one, seq, hash) SELECT 1, 0, '${GENESIS_HASH}'
  WHERE NOT EXISTS (SELECT 1 FROM audit_head) AND NOT EXISTS (SELECT 1 FROM audit_events);
CREATE TRIGGER IF NOT EXISTS audit_chain BEFORE INSERT ON audit_events
  WHEN NEW.seq IS NOT (SELECT seq + 1 FROM audit_head) OR NEW.prev_hash IS NOT (SELECT hash FROM audit_head)
  BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only: an entry must follow the head'); END;
CREATE TRIGGER IF NOT EXISTS audit_head_follows AFTER INSERT ON audit_events
  BEGIN UPDATE audit_head SET seq = NEW.seq, hash = NEW.hash; END;
CREATE TRIGGER IF NOT EXISTS audit_head_forward BEFORE UPDATE ON audit_head
  WHEN NEW.one IS NOT OLD.one OR NEW.seq IS NOT OLD.seq + 1 OR NEW.hash IS NOT (SELECT hash FROM audit_events WHERE seq = NEW.seq)
  BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only: the head only follows a new entry'); END;
CREATE TRIGGER IF NOT EXISTS audit_head_kept BEFORE DELETE ON audit_head
  BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only: DELETE refused'); END;
CREATE TRIGGER IF NOT EXISTS audit_append_only_update BEFORE UPDATE ON audit_events
  BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only: UPDATE refused'); END;
CREATE TRIGGER IF NOT EXISTS audit_append_only_delete BEFORE DELETE ON audit_events
  BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only: DELETE refused'); END;
`

interface Row { seq: number, at: string, actor: string, action: string, subject: string | null, detail: string, prev_hash: string, hash: string }

const COLUMNS = 'seq, at, actor, action, subject, detail, prev_hash, hash'

export interface SqliteAuditStoreOptions {
  /** The SQLite file, created if missing; in memory when absent. */
  path?: string
  clock?: Clock
  /**
   * Opens an existing file without writing to it (a verifier): the schema
   * and its triggers are left as they are found, and `append` fails.
   */
  readOnly?: boolean
}

export class SqliteAuditStore implements AuditStore {
  readonly #db: DatabaseSync
  readonly #clock: Clock

  constructor (options: SqliteAuditStoreOptions = {}) {
    this.#clock = options.clock ?? systemClock
    if (options.readOnly) {
      // Checking a trail must not repair it: a dropped trigger stays dropped for the verifier to find the file as it is.
      this.#db = new DatabaseSync(options.path ?? ':memory:', { readOnly: true })
      this.#db.exec('PRAGMA busy_timeout = 5000;')
      return
    }
    this.#db = new DatabaseSync(options.path ?? ':memory:')
    // FULL: an operator's action is answered only once its record is on disk.
    this.#db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;')
    this.#db.exec(SCHEMA)
    addKeyColumn(this.#db)
  }

  append (event: AuditEvent): AuditEntry {
    const detail = storedDetail(event)
    return inTransaction(this.#db, () => {
      // Looked up under the append's own lock: two writers with one key make one entry.
      const recorded = event.key === undefined ? undefined : this.#db.prepare(`SELECT ${COLUMNS} FROM audit_events WHERE key = ?`).get(event.key) as Row | undefined
      if (recorded) return entryOf(recorded)
      const head = this.#head()
      if (!head) throw new Error('the audit trail has no head (audit_head was removed); it cannot be appended to until it is restored')
      const at = new Date(this.#clock.now()).toISOString()
      const fields = { seq: head.seq + 1, prevHash: head.hash, atMicros: micros(at), actor: event.actor, action: event.action, subject: event.subject ?? null, detail }
      const hash = chainHash(fields)
      this.#db.prepare(`INSERT INTO audit_events (${COLUMNS}, key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`)
        .run(fields.seq, at, fields.actor, fields.action, fields.subject, canonicalJson(detail), fields.prevHash, hash, event.key ?? null)
      return entryOf({ seq: fields.seq, at, actor: fields.actor, action: fields.action, subject: fields.subject, detail: canonicalJson(detail), prev_hash: fields.prevHash, hash })
    })
  }

  page (query: AuditQuery, limit: number, after?: number): AuditPage {
    const newest = (query.order ?? 'newest') === 'newest'
    const filter = query.subject === undefined ? [] : ['subject = ?']
    const filterValues = query.subject === undefined ? [] : [query.subject]
    const keyset = after === undefined ? [] : [newest ? 'seq < ?' : 'seq > ?']
    const where = (conditions: string[]) => conditions.length > 0 ? `WHERE ${conditions.join(' AND ')}` : ''
    const { total } = this.#db.prepare(`SELECT count(*) AS total FROM audit_events ${where(filter)}`).get(...filterValues) as { total: number }
    const rows = this.#db.prepare(`SELECT ${COLUMNS} FROM audit_events ${where([...filter, ...keyset])} ORDER BY seq ${newest ? 'DESC' : 'ASC'} LIMIT ?`)
      .all(...filterValues, ...(after === undefined ? [] : [after]), limit + 1) as unknown as Row[]
    const items = rows.slice(0, limit).map(entryOf)
    return { items, total, last: rows.length > limit ? items.at(-1)!.seq : null }
  }

  verify (): AuditVerdict {
    // One read transaction: the head, the entries and their count as of one moment, appends meanwhile unseen.
    this.#db.exec('BEGIN')
    try {
      const { entries, last } = this.#db.prepare('SELECT count(*) AS entries, coalesce(max(seq), 0) AS last FROM audit_events').get() as { entries: number, last: number }
      const head = this.#head()
      if (!head) return verdict(entries, { brokenAt: last + 1, reason: 'head-moved', message: 'the head (audit_head) is missing: the trail\'s end cannot be checked' })
      const rows = this.#db.prepare(`SELECT ${COLUMNS} FROM audit_events ORDER BY seq`).iterate() as Iterable<Row>
      const found = firstBreak(chainRows(rows), head)
      return verdict(entries, found && classifyBreak(found.brokenAt, found.entry, head, last))
    } finally {
      this.#db.exec('COMMIT')
    }
  }

  close (): void {
    this.#db.close()
  }

  #head (): ChainHead | undefined {
    return this.#db.prepare('SELECT seq, hash FROM audit_head').get() as ChainHead | undefined
  }
}

/**
 * The idempotency key (AuditEvent.key), added to files made before it: a
 * column beside the chain (ALTER TABLE is not an UPDATE of any entry, and
 * the hashes do not cover it), unique where set.
 */
function addKeyColumn (db: DatabaseSync): void {
  const columns = db.prepare('SELECT name FROM pragma_table_info(\'audit_events\')').all() as Array<{ name: string }>
  if (!columns.some((column) => column.name === 'key')) db.exec('ALTER TABLE audit_events ADD COLUMN key TEXT')
  db.exec('CREATE UNIQUE INDEX IF NOT EXISTS audit_events_by_key ON audit_events (key) WHERE key IS NOT NULL')
}

function micros (at: string): number {
  return Date.parse(at) * 1000
}

/** A stored detail as JSON; text that is not JSON (written past the store) is kept as text, and fails its hash. */
function parseDetail (text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

function* chainRows (rows: Iterable<Row>): Iterable<Parameters<typeof firstBreak>[0] extends Iterable<infer R> ? R : never> {
  for (const row of rows) {
    yield { seq: row.seq, prevHash: row.prev_hash, hash: row.hash, atMicros: micros(row.at), actor: row.actor, action: row.action, subject: row.subject, detail: parseDetail(row.detail) }
  }
}

function entryOf (row: Row): AuditEntry {
  const { from, detail } = withoutFrom(parseDetail(row.detail))
  return { seq: row.seq, at: row.at, actor: row.actor, action: row.action, subject: row.subject, from, detail, prevHash: row.prev_hash, hash: row.hash }
}
