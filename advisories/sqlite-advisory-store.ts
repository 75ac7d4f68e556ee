/**
 * The advisory store in SQLite (node:sqlite, WAL): `placeguard advisories
 * sync` writes it, a running collector reads it (its `revision` says when
 * to rebuild the match index). Without a database URL; a collector group
 * shares pg-advisory-store.ts instead.
 */
import { DatabaseSync } from 'node:sqlite'
import type { AdvisoryProduct } from '../shared/advisory-match.ts'
import { inTransaction } from '../shared/sqlite.ts'
import { type AdvisoryListing, type AdvisoryOrigin, type AdvisoryStore, type ProviderPosition, supersedes, type UpsertResult } from './advisory-store.ts'
import type { StoredAdvisory } from './csaf-document.ts'

const SCHEMA = `
CREATE TABLE IF NOT EXISTS advisories (
  id           TEXT PRIMARY KEY,
  format       TEXT NOT NULL CHECK (format IN ('csaf', 'osv')),
  title        TEXT NOT NULL,
  cves         TEXT NOT NULL,            -- JSON array
  cvss         REAL,                     -- highest CVSS v3 base score
  cvss_vector  TEXT,                     -- its vector (or a CVSS v4 vector, unscored)
  remediation  TEXT,
  revision     TEXT NOT NULL,            -- tracking.version / modified
  released_at  TEXT NOT NULL,
  provider     TEXT NOT NULL,
  file         TEXT NOT NULL,
  sha256       TEXT NOT NULL,            -- of the file as read: unchanged files are skipped
  synced_at    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS advisories_by_file ON advisories (provider, file);
CREATE TABLE IF NOT EXISTS advisory_products (
  advisory_id  TEXT NOT NULL REFERENCES advisories (id) ON DELETE CASCADE,
  vendor       TEXT NOT NULL,
  model        TEXT NOT NULL,
  version      TEXT,
  range        TEXT,
  status       TEXT NOT NULL CHECK (status IN ('affected', 'not-affected', 'fixed'))
);
CREATE INDEX IF NOT EXISTS advisory_products_by_advisory ON advisory_products (advisory_id);
CREATE TABLE IF NOT EXISTS providers (
  provider       TEXT PRIMARY KEY,
  changed_until  TEXT,
  retry          TEXT NOT NULL,          -- JSON array of files refused last time
  synced_at      TEXT
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('revision', '0');
`

interface AdvisoryRow {
  id: string, format: 'csaf' | 'osv', title: string, cves: string, cvss: number | null, remediation: string | null,
  revision: string, released_at: string, provider: string, file: string, sha256: string, synced_at: string, cvss_vector: string | null
}
interface ProductRow { advisory_id: string, vendor: string, model: string, version: string | null, range: string | null, status: AdvisoryProduct['status'] }

export class SqliteAdvisoryStore implements AdvisoryStore {
  readonly #db: DatabaseSync

  /** `readOnly`: a reader (`pki list`) that must not create the file or its schema, nor take a write lock a sync would wait on. */
  constructor (path: string, options: { readOnly?: boolean } = {}) {
    if (options.readOnly) {
      this.#db = new DatabaseSync(path, { readOnly: true })
      this.#db.exec('PRAGMA busy_timeout = 5000;')
      return
    }
    this.#db = new DatabaseSync(path)
    this.#db.exec('PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;')
    this.#db.exec(SCHEMA)
    // A database made before CVSS vectors were kept gains the column; its rows read null until their files change.
    const columns = this.#db.prepare('PRAGMA table_info(advisories)').all() as Array<{ name: string }>
    if (!columns.some((c) => c.name === 'cvss_vector')) this.#db.exec('ALTER TABLE advisories ADD COLUMN cvss_vector TEXT')
  }

  upsert (advisory: StoredAdvisory, origin: AdvisoryOrigin, at: string): UpsertResult {
    return inTransaction(this.#db, () => {
      const existing = this.#db.prepare('SELECT sha256, released_at FROM advisories WHERE id = ?').get(advisory.id) as { sha256: string, released_at: string } | undefined
      if (existing && (existing.sha256 === origin.sha256 || supersedes({ releasedAt: existing.released_at }, advisory))) return 'unchanged'
      this.#db.prepare('DELETE FROM advisories WHERE id = ?').run(advisory.id)
      this.#db.prepare(`INSERT INTO advisories (id, format, title, cves, cvss, cvss_vector, remediation, revision, released_at, provider, file, sha256, synced_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`).run(advisory.id, advisory.format, advisory.title, JSON.stringify(advisory.cves), advisory.cvss, advisory.cvssVector ?? null,
        advisory.remediation, advisory.revision, advisory.releasedAt, origin.provider, origin.file, origin.sha256, at)
      const insert = this.#db.prepare('INSERT INTO advisory_products (advisory_id, vendor, model, version, range, status) VALUES (?, ?, ?, ?, ?, ?)')
      for (const p of advisory.products) insert.run(advisory.id, p.vendor, p.model, p.version, p.range, p.status)
      this.#db.exec('UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE key = \'revision\'')
      return existing ? 'updated' : 'new'
    })
  }

  hashOf (provider: string, file: string): string | undefined {
    return (this.#db.prepare('SELECT sha256 FROM advisories WHERE provider = ? AND file = ?').get(provider, file) as { sha256: string } | undefined)?.sha256
  }

  position (provider: string): ProviderPosition {
    const row = this.#db.prepare('SELECT changed_until, retry, synced_at FROM providers WHERE provider = ?').get(provider) as { changed_until: string | null, retry: string, synced_at: string | null } | undefined
    return row ? { changedUntil: row.changed_until, retry: JSON.parse(row.retry) as string[], syncedAt: row.synced_at } : { changedUntil: null, retry: [], syncedAt: null }
  }

  setPosition (provider: string, position: ProviderPosition): void {
    this.#db.prepare(`INSERT INTO providers (provider, changed_until, retry, synced_at) VALUES (?, ?, ?, ?)
      ON CONFLICT (provider) DO UPDATE SET changed_until = excluded.changed_until, retry = excluded.retry, synced_at = excluded.synced_at
      WHERE providers.changed_until IS NULL OR excluded.changed_until IS NULL OR julianday(excluded.changed_until) >= julianday(providers.changed_until)`)
      .run(provider, position.changedUntil, JSON.stringify(position.retry), position.syncedAt)
  }

  list (): AdvisoryListing[] {
    const products = new Map<string, AdvisoryProduct[]>()
    for (const row of this.#db.prepare('SELECT * FROM advisory_products ORDER BY rowid').all() as unknown as ProductRow[]) {
      const product: AdvisoryProduct = { vendor: row.vendor, model: row.model, version: row.version, range: row.range, status: row.status }
      const list = products.get(row.advisory_id)
      if (list) list.push(product)
      else products.set(row.advisory_id, [product])
    }
    return (this.#db.prepare('SELECT * FROM advisories ORDER BY id').all() as unknown as AdvisoryRow[]).map((row) => ({
      id: row.id, format: row.format, title: row.title, cves: JSON.parse(row.cves) as string[], cvss: row.cvss, cvssVector: row.cvss_vector, remediation: row.remediation,
      revision: row.revision, releasedAt: row.released_at, provider: row.provider, file: row.file, syncedAt: row.synced_at,
      products: products.get(row.id) ?? [],
    }))
  }

  revision (): number {
    return Number((this.#db.prepare('SELECT value FROM meta WHERE key = \'revision\'').get() as { value: string }).value)
  }

  close (): void {
    this.#db.close()
  }
}
