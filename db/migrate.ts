/**
 * Schema migrations: plain SQL files in db/migrations, `NNNN_name.sql`,
 * applied in version order when a collector starts, each in a transaction
 * of its own together with its row in `schema_migrations (version, name,
 * applied_at, checksum)`. So a migration is applied entirely or not at all,
 * and a crash midway leaves the database at the previous version. (A
 * migration therefore cannot use what a transaction forbids, such as
 * CREATE INDEX CONCURRENTLY.)
 *
 * Collectors of a group start together: the whole run holds a session
 * advisory lock (`pg_advisory_lock`), so one migrates while the others
 * wait, then find nothing pending.
 *
 * A collector refuses to start (PlaceGuardError) rather than run against a
 * schema it does not know:
 *   - PG_ERR_DB_MIGRATION_CHANGED: an applied migration's file has changed
 *     since (its checksum differs), or a new migration is numbered below one
 *     already applied. Migrations are never edited once released; a change
 *     is a new file.
 *   - PG_ERR_DB_SCHEMA_NEWER: the database has a migration this PlaceGuard
 *     does not know (a newer version migrated it).
 *   - PG_ERR_DB_MIGRATION_FAILED: a migration failed (rolled back), or the
 *     lock was held by another process for longer than `lockWaitMs`.
 *   - PG_ERR_DB_UNREACHABLE: no connection.
 */
import { createHash } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Pool, PoolClient } from 'pg'
import { PlaceGuardError } from '../shared/errors.ts'
import type { Logger } from '../shared/logger.ts'

export interface Migration {
  version: number
  name: string
  sql: string
  /** sha256 (hex) of the file, line endings as LF: a checkout with CRLF is the same migration. */
  checksum: string
}

export interface MigrationResult {
  /** The database's version after the run: the highest applied. */
  version: number
  /** What this run applied, in order; empty when the database was up to date. */
  applied: Array<{ version: number, name: string, ms: number }>
}

export const MIGRATIONS_DIR = join(import.meta.dirname, 'migrations')
const FILE = /^(\d{4})_([a-z0-9_]+)\.sql$/
/** The advisory lock's key, derived in SQL from a name any reader can search for. */
const LOCK_KEY = 'hashtextextended(\'placeguard:schema_migrations\', 0)'
const QUERY_CANCELED = '57014'

/** The migrations in a directory, in version order. Any other file there is an error: a misnamed migration must not be skipped. */
export function loadMigrations (dir: string = MIGRATIONS_DIR): Migration[] {
  const migrations = readdirSync(dir).sort().map((file) => {
    const match = FILE.exec(file)
    if (!match) throw new Error(`${join(dir, file)}: a migration is named NNNN_name.sql (name: a-z 0-9 _)`)
    const sql = readFileSync(join(dir, file), 'utf8').replace(/\r\n/g, '\n')
    return { version: Number(match[1]), name: match[2]!, sql, checksum: checksumOf(sql) }
  })
  migrations.forEach((migration, i) => {
    if (migration.version !== i + 1) throw new Error(`${dir}: migration versions run 1, 2, 3… without gaps or repeats; found ${String(migration.version).padStart(4, '0')}_${migration.name} at place ${i + 1}`)
  })
  return migrations
}

export function checksumOf (sql: string): string {
  return createHash('sha256').update(sql.replace(/\r\n/g, '\n')).digest('hex')
}

export async function migrate (pool: Pool, options: { logger: Logger, migrations?: Migration[], lockWaitMs?: number }): Promise<MigrationResult> {
  const migrations = options.migrations ?? loadMigrations()
  const lockWaitMs = options.lockWaitMs ?? 120_000
  let client: PoolClient
  try {
    client = await pool.connect()
  } catch (error) {
    throw new PlaceGuardError('PG_ERR_DB_UNREACHABLE', `cannot connect to the database to migrate its schema: ${(error as Error).message}`, { field: 'databaseUrl', cause: error })
  }
  // Back to the pool only as it came: unlocked, its statement timeout restored. Otherwise closed (which releases a lock too).
  let clean = false
  // Lost while held (the pool hears idle connections only): the next query fails; nothing must crash on the event.
  const lost = (): void => { clean = false }
  client.on('error', lost)
  try {
    await client.query(`SET statement_timeout = ${Math.max(1, Math.round(lockWaitMs))}`)
    try {
      await client.query(`SELECT pg_advisory_lock(${LOCK_KEY})`)
    } catch (error) {
      if ((error as { code?: string }).code !== QUERY_CANCELED) throw error
      throw new PlaceGuardError('PG_ERR_DB_MIGRATION_FAILED', `another process has held the schema migration lock for over ${lockWaitMs / 1000} s`, {
        hint: 'a collector may be stuck migrating: see pg_stat_activity for application_name and pg_locks for the advisory lock', cause: error,
      })
    }
    // Under the lock: a migration may build an index for minutes.
    await client.query('SET statement_timeout = 0')
    try {
      return await migrateLocked(client, migrations, options.logger)
    } finally {
      // A failure here must not hide the error already thrown; the session's end then releases the lock.
      clean = await client.query(`SELECT pg_advisory_unlock(${LOCK_KEY}); RESET statement_timeout`).then(() => true, () => false)
    }
  } finally {
    client.off('error', lost)
    client.release(!clean)
  }
}

async function migrateLocked (client: PoolClient, migrations: Migration[], logger: Logger): Promise<MigrationResult> {
  await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    checksum text NOT NULL
  )`)
  const applied = (await client.query<{ version: number, name: string, checksum: string }>('SELECT version, name, checksum FROM schema_migrations ORDER BY version')).rows
  const known = new Map(migrations.map((m) => [m.version, m]))
  const highestKnown = migrations.at(-1)?.version ?? 0
  for (const row of applied) {
    const mine = known.get(row.version)
    if (!mine) {
      throw new PlaceGuardError('PG_ERR_DB_SCHEMA_NEWER', `the database has schema migration ${label(row)}, which this PlaceGuard does not know (it knows up to ${highestKnown})`, {
        hint: 'a newer PlaceGuard migrated this database: run that version (collectors of a group run one version)',
      })
    }
    if (mine.checksum !== row.checksum) {
      throw new PlaceGuardError('PG_ERR_DB_MIGRATION_CHANGED', `schema migration ${label(mine)} was applied with checksum ${row.checksum.slice(0, 12)}…, and this PlaceGuard's copy has ${mine.checksum.slice(0, 12)}…`, {
        hint: 'an applied migration is never edited: restore the file as released, and put the change in a new migration',
      })
    }
  }
  const done = new Set(applied.map((row) => row.version))
  const highestApplied = applied.at(-1)?.version ?? 0
  const pending = migrations.filter((m) => !done.has(m.version))
  const early = pending.find((m) => m.version < highestApplied)
  if (early) {
    throw new PlaceGuardError('PG_ERR_DB_MIGRATION_CHANGED', `schema migration ${label(early)} is new, but the database already has ${highestApplied}: migrations apply in order only`, {
      hint: 'renumber the new migration after the highest applied one',
    })
  }

  const result: MigrationResult = { version: highestApplied, applied: [] }
  for (const migration of pending) {
    const started = performance.now()
    try {
      await client.query('BEGIN')
      // One simple-protocol query: the file's statements run as they are, in the transaction.
      await client.query(migration.sql)
      await client.query('INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)', [migration.version, migration.name, migration.checksum])
      await client.query('COMMIT')
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {})
      throw new PlaceGuardError('PG_ERR_DB_MIGRATION_FAILED', `schema migration ${label(migration)} failed and was rolled back: ${(error as Error).message}`, { cause: error })
    }
    const ms = Math.round(performance.now() - started)
    logger.info({ version: migration.version, migration: migration.name, ms }, 'database schema migrated')
    result.applied.push({ version: migration.version, name: migration.name, ms })
    result.version = migration.version
  }
  return result
}

function label (migration: { version: number, name: string }): string {
  return `${String(migration.version).padStart(4, '0')}_${migration.name}`
}
