/**
 * The advisory store in the collector group's PostgreSQL: `advisories`,
 * `advisory_products`, `advisory_providers` and `advisory_revision` of
 * db/migrations/0005_advisories.sql. `placeguard advisories sync` writes it
 * from any machine with the database URL; each collector polls `revision`
 * and re-reads the advisories when it moved.
 *
 * Safe with two syncs of one provider at once: an upsert is one
 * transaction that inserts the advisory if its id is new, else locks its
 * row and replaces it only with a different file not released earlier, so
 * each advisory is stored once with its product lines once; a position is
 * kept only if it is at least as far along as the stored one.
 *
 * The store does not own its pool: a collector's stores share one, and
 * `close` leaves it open.
 */
import type { Pool, PoolClient } from 'pg'
import type { AdvisoryProduct } from '../shared/advisory-match.ts'
import { inPgTransaction } from '../shared/postgres.ts'
import { type AdvisoryListing, type AdvisoryOrigin, type AsyncAdvisoryStore, type ProviderPosition, supersedes, type UpsertResult } from './advisory-store.ts'
import type { StoredAdvisory } from './csaf-document.ts'

/** Times as the SQLite store and the interface give them: ISO 8601, UTC, milliseconds. */
const iso = (column: string): string => `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`

interface ListingRow {
  id: string, format: 'csaf' | 'osv', title: string, cves: string[], cvss: number | null, cvss_vector: string | null, remediation: string | null,
  revision: string, released_at: string, provider: string, file: string, synced_at: string, products: AdvisoryProduct[]
}

export interface PgAdvisoryStoreOptions {
  /** The group's pool (db/pool.ts), migrated (db/migrate.ts); the caller ends it. */
  pool: Pool
}

export class PgAdvisoryStore implements AsyncAdvisoryStore {
  readonly #pool: Pool

  constructor (options: PgAdvisoryStoreOptions) {
    this.#pool = options.pool
  }

  async upsert (advisory: StoredAdvisory, origin: AdvisoryOrigin, at: string): Promise<UpsertResult> {
    return await inPgTransaction(this.#pool, async (client) => {
      const values = [advisory.id, advisory.format, advisory.title, JSON.stringify(advisory.cves), advisory.cvss, advisory.remediation,
        advisory.revision, advisory.releasedAt, origin.provider, origin.file, origin.sha256, at, advisory.cvssVector ?? null]
      // A new id is inserted; one another sync is inserting now waits for it and is then known.
      const inserted = await client.query(`INSERT INTO advisories (id, format, title, cves, cvss, remediation, revision, released_at, provider, file, sha256, synced_at, cvss_vector)
        VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT (id) DO NOTHING`, values)
      if (inserted.rowCount === 1) {
        await insertProducts(client, advisory)
        await bumpRevision(client)
        return 'new'
      }
      const { rows } = await client.query<{ sha256: string, released_at: string }>('SELECT sha256, released_at FROM advisories WHERE id = $1 FOR UPDATE', [advisory.id])
      const stored = rows[0]
      // Advisories are never deleted, so the row the conflict named is there.
      if (!stored) throw new Error(`advisory ${advisory.id}: its row vanished during the upsert`)
      if (stored.sha256 === origin.sha256 || supersedes({ releasedAt: stored.released_at }, advisory)) return 'unchanged'
      await client.query(`UPDATE advisories SET format = $2, title = $3, cves = $4::jsonb, cvss = $5, remediation = $6, revision = $7, released_at = $8,
        provider = $9, file = $10, sha256 = $11, synced_at = $12, cvss_vector = $13 WHERE id = $1`, values)
      await client.query('DELETE FROM advisory_products WHERE advisory_id = $1', [advisory.id])
      await insertProducts(client, advisory)
      await bumpRevision(client)
      return 'updated'
    })
  }

  async hashOf (provider: string, file: string): Promise<string | undefined> {
    const { rows } = await this.#pool.query<{ sha256: string }>('SELECT sha256 FROM advisories WHERE provider = $1 AND file = $2 LIMIT 1', [provider, file])
    return rows[0]?.sha256
  }

  async position (provider: string): Promise<ProviderPosition> {
    const { rows } = await this.#pool.query<{ changed_until: string | null, retry: string[], synced_at: string | null }>(
      `SELECT ${iso('changed_until')} AS changed_until, retry, ${iso('synced_at')} AS synced_at FROM advisory_providers WHERE provider = $1`, [provider])
    const row = rows[0]
    return row ? { changedUntil: row.changed_until, retry: row.retry, syncedAt: row.synced_at } : { changedUntil: null, retry: [], syncedAt: null }
  }

  async setPosition (provider: string, position: ProviderPosition): Promise<void> {
    // One statement: the comparison and the write under the row's lock (advisory-store.ts, setPosition).
    await this.#pool.query(`INSERT INTO advisory_providers (provider, changed_until, retry, synced_at) VALUES ($1, $2, $3::jsonb, $4)
      ON CONFLICT (provider) DO UPDATE SET changed_until = excluded.changed_until, retry = excluded.retry, synced_at = excluded.synced_at
      WHERE advisory_providers.changed_until IS NULL OR excluded.changed_until IS NULL OR excluded.changed_until >= advisory_providers.changed_until`,
    [provider, position.changedUntil, JSON.stringify(position.retry), position.syncedAt])
  }

  async list (): Promise<AdvisoryListing[]> {
    // One statement, one snapshot: no advisory without the product lines committed with it. Ids in byte order, as SQLite sorts them.
    const { rows } = await this.#pool.query<ListingRow>(`SELECT a.id, a.format, a.title, a.cves, a.cvss, a.cvss_vector, a.remediation, a.revision, a.released_at, a.provider, a.file,
        ${iso('a.synced_at')} AS synced_at,
        COALESCE((SELECT json_agg(json_build_object('vendor', p.vendor, 'model', p.model, 'version', p.version, 'range', p.range, 'status', p.status) ORDER BY p.position)
          FROM advisory_products p WHERE p.advisory_id = a.id), '[]'::json) AS products
      FROM advisories a ORDER BY a.id COLLATE "C"`)
    return rows.map((row) => ({
      id: row.id, format: row.format, title: row.title, cves: row.cves, cvss: row.cvss, cvssVector: row.cvss_vector, remediation: row.remediation,
      revision: row.revision, releasedAt: row.released_at, provider: row.provider, file: row.file, syncedAt: row.synced_at, products: row.products,
    }))
  }

  async revision (): Promise<number> {
    const { rows } = await this.#pool.query<{ revision: string }>('SELECT revision::text AS revision FROM advisory_revision')
    return Number(rows[0]?.revision ?? 0)
  }

  async close (): Promise<void> {
    // The pool is the caller's.
  }
}

/** The advisory's product lines, in order, in one statement (a document may name thousands). */
async function insertProducts (client: PoolClient, advisory: StoredAdvisory): Promise<void> {
  if (advisory.products.length === 0) return
  const column = <K extends keyof AdvisoryProduct>(key: K) => advisory.products.map((p) => p[key])
  await client.query(`INSERT INTO advisory_products (advisory_id, position, vendor, model, version, range, status)
    SELECT $1, t.position, t.vendor, t.model, t.version, t.range, t.status
    FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) WITH ORDINALITY AS t(vendor, model, version, range, status, position)`,
  [advisory.id, column('vendor'), column('model'), column('version'), column('range'), column('status')])
}

/** Last in the transaction: the one row every upsert takes is held only until the commit. */
async function bumpRevision (client: PoolClient): Promise<void> {
  await client.query('UPDATE advisory_revision SET revision = revision + 1')
}
