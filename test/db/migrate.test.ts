/**
 * Schema migrations (db/migrate.ts) against a real PostgreSQL, each test on
 * a database of its own: applied once and recorded, a second run a no-op,
 * two collectors starting together serialized by the advisory lock, and a
 * refusal to start (with the catalogue's code) when an applied migration
 * changed, the database is newer than the code, a migration fails, or the
 * lock is held too long.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { checksumOf, createDatabasePool, loadMigrations, migrate, type Migration, type Pool } from '../../db/index.ts'
import { createLogger } from '../../shared/logger.ts'
import { freePort } from '../helpers/free-port.ts'
import { startPostgres, waitForLockWait, type RunningPostgres } from '../helpers/postgres.ts'

const logger = createLogger({ level: 'silent' })
const LOCK_KEY = 'hashtextextended(\'placeguard:schema_migrations\', 0)'
let server: RunningPostgres
const pools: Pool[] = []
let databases = 0
/** A fresh database and `count` collectors' pools on it (each named collector-<i>-<database>). */
const freshDatabase = async (count = 1): Promise<Pool[]> => {
  const name = `migrate_${++databases}`
  const url = await server.createDatabase(name)
  return Array.from({ length: count }, (_, i) => {
    const pool = createDatabasePool({ url, applicationName: `collector-${i + 1}-${name}`, logger, max: 2 })
    pools.push(pool)
    return pool
  })
}
const migration = (version: number, name: string, sql: string): Migration => ({ version, name, sql, checksum: checksumOf(sql) })
const recorded = async (pool: Pool) =>
  (await pool.query<{ version: number, name: string, checksum: string, applied_at: Date }>('SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version')).rows
const tables = async (pool: Pool) =>
  (await pool.query<{ table_name: string }>('SELECT table_name FROM information_schema.tables WHERE table_schema = \'public\' ORDER BY table_name')).rows.map((r) => r.table_name)

const until = async (condition: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> => {
  const deadline = Date.now() + timeoutMs
  while (!await condition()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

beforeAll(async () => { server = await startPostgres() })
afterAll(async () => {
  await Promise.all(pools.map((pool) => pool.end()))
  await server?.stop()
})

describe('migrate', () => {
  it('applies the shipped migrations once, recording version, name, checksum and time; a second run is a no-op', async () => {
    const [pool] = await freshDatabase()
    const shipped = loadMigrations()
    expect(shipped[0]).toMatchObject({ version: 1, name: 'initial' })
    const first = await migrate(pool!, { logger })
    expect(first.applied.map((m) => m.version)).toEqual(shipped.map((m) => m.version))
    expect(first.version).toBe(shipped.at(-1)!.version)
    const rows = await recorded(pool!)
    expect(rows.map(({ version, name, checksum }) => ({ version, name, checksum }))).toEqual(shipped.map(({ version, name, checksum }) => ({ version, name, checksum })))
    expect(await tables(pool!)).toEqual(expect.arrayContaining(['alerts', 'alert_changes', 'sinks', 'deliveries', 'delivered_marks', 'audit_events', 'devices', 'partition_fencing', 'schema_migrations']))

    const second = await migrate(pool!, { logger })
    expect(second).toEqual({ version: first.version, applied: [] })
    expect(await recorded(pool!)).toEqual(rows) // same rows, same applied_at
    // The session it used went back to the pool as it came: the pool's statement timeout, no lock held.
    expect((await pool!.query('SHOW statement_timeout')).rows).toEqual([{ statement_timeout: '30s' }])
    expect((await pool!.query('SELECT count(*)::int AS n FROM pg_locks WHERE locktype = \'advisory\'')).rows).toEqual([{ n: 0 }])
  })

  it('applies only what is pending, in order, when the code brings a new migration', async () => {
    const [pool] = await freshDatabase()
    const one = migration(1, 'first', 'CREATE TABLE one (n int);')
    await migrate(pool!, { logger, migrations: [one] })
    const two = migration(2, 'second', 'ALTER TABLE one ADD COLUMN m int; CREATE TABLE two (n int);')
    const three = migration(3, 'third', 'INSERT INTO two VALUES (3);')
    const result = await migrate(pool!, { logger, migrations: [one, two, three] })
    expect(result.applied.map((m) => m.name)).toEqual(['second', 'third'])
    expect((await recorded(pool!)).map((r) => r.version)).toEqual([1, 2, 3])
    expect((await pool!.query('SELECT n FROM two')).rows).toEqual([{ n: 3 }])
  })

  it('lets two collectors start together: one migrates while the other waits on the advisory lock, then finds nothing pending', async () => {
    const [a, b] = await freshDatabase(2)
    // A slow second migration keeps the first collector busy; without the lock both would run it, and the tables would collide.
    const migrations = [...loadMigrations(), migration(loadMigrations().length + 1, 'slow_probe', 'CREATE TABLE probe_runs (n int); INSERT INTO probe_runs VALUES (1); SELECT pg_sleep(0.5);')]
    const name = (await a!.query<{ db: string }>('SELECT current_database() AS db')).rows[0]!.db
    await b!.query('SELECT 1') // both connected before the race starts
    const first = migrate(a!, { logger, migrations })
    await until(async () => (await b!.query(`SELECT count(*)::int AS n FROM pg_locks l JOIN pg_stat_activity s USING (pid)
      WHERE l.locktype = 'advisory' AND l.granted AND s.application_name = $1`, [`collector-1-${name}`])).rows[0].n === 1)
    const second = migrate(b!, { logger, migrations })
    await waitForLockWait(a!, `collector-2-${name}`)
    const results = await Promise.all([first, second])
    expect(results[0].applied.map((m) => m.version)).toEqual(migrations.map((m) => m.version))
    expect(results[1]).toEqual({ version: migrations.length, applied: [] })
    expect((await a!.query('SELECT count(*)::int AS n FROM probe_runs')).rows).toEqual([{ n: 1 }])
    expect((await recorded(a!)).map((r) => r.version)).toEqual(migrations.map((m) => m.version))
  })

  it('serializes many collectors starting at the same instant: every migration applied exactly once', async () => {
    const collectors = await freshDatabase(6)
    const migrations = [...loadMigrations(), migration(loadMigrations().length + 1, 'count_runs', 'CREATE TABLE runs (n int); INSERT INTO runs VALUES (1);')]
    const results = await Promise.all(collectors.map((pool) => migrate(pool, { logger, migrations })))
    expect(results.filter((r) => r.applied.length > 0)).toHaveLength(1)
    expect(results.every((r) => r.version === migrations.length)).toBe(true)
    expect((await collectors[0]!.query('SELECT count(*)::int AS n FROM runs')).rows).toEqual([{ n: 1 }])
  })

  it('refuses to start when an applied migration\'s file changed, and applies nothing then', async () => {
    const [pool] = await freshDatabase()
    const one = migration(1, 'first', 'CREATE TABLE one (n int);')
    await migrate(pool!, { logger, migrations: [one] })
    const edited = migration(1, 'first', 'CREATE TABLE one (n bigint);')
    const two = migration(2, 'second', 'CREATE TABLE two (n int);')
    await expect(migrate(pool!, { logger, migrations: [edited, two] })).rejects.toMatchObject({
      name: 'PlaceGuardError', code: 'PG_ERR_DB_MIGRATION_CHANGED', message: expect.stringMatching(/0001_first was applied with checksum/),
    })
    expect((await recorded(pool!)).map((r) => r.version)).toEqual([1])
    expect(await tables(pool!)).not.toContain('two')
    // Line endings alone are no change: a CRLF checkout of the same file migrates.
    await expect(migrate(pool!, { logger, migrations: [migration(1, 'first', one.sql.replace(/\n/g, '\r\n'))] })).resolves.toEqual({ version: 1, applied: [] })
  })

  it('refuses a database a newer PlaceGuard migrated, and a new migration numbered below an applied one', async () => {
    const [pool] = await freshDatabase()
    const [one, two, three] = [migration(1, 'first', 'SELECT 1;'), migration(2, 'second', 'SELECT 2;'), migration(3, 'third', 'SELECT 3;')]
    await migrate(pool!, { logger, migrations: [one, two] })
    await expect(migrate(pool!, { logger, migrations: [one] })).rejects.toMatchObject({ code: 'PG_ERR_DB_SCHEMA_NEWER', message: expect.stringMatching(/0002_second, which this PlaceGuard does not know/) })

    const [other] = await freshDatabase()
    await migrate(other!, { logger, migrations: [one, three] })
    await expect(migrate(other!, { logger, migrations: [one, two, three] })).rejects.toMatchObject({ code: 'PG_ERR_DB_MIGRATION_CHANGED', message: expect.stringMatching(/0002_second is new/) })
  })

  it('rolls a failing migration back entirely and leaves the database at the previous version', async () => {
    const [pool] = await freshDatabase()
    const one = migration(1, 'first', 'CREATE TABLE one (n int);')
    const broken = migration(2, 'broken', 'CREATE TABLE half (n int); INSERT INTO one VALUES (1); SELECT 1 / 0;')
    await expect(migrate(pool!, { logger, migrations: [one, broken] })).rejects.toMatchObject({ code: 'PG_ERR_DB_MIGRATION_FAILED', message: expect.stringMatching(/0002_broken failed and was rolled back: division by zero/) })
    expect((await recorded(pool!)).map((r) => r.version)).toEqual([1])
    expect(await tables(pool!)).not.toContain('half')
    expect((await pool!.query('SELECT count(*)::int AS n FROM one')).rows).toEqual([{ n: 0 }])
    const fixed = migration(2, 'fixed', 'CREATE TABLE half (n int);')
    expect((await migrate(pool!, { logger, migrations: [one, fixed] })).applied.map((m) => m.name)).toEqual(['fixed'])
  })

  it('gives up with PG_ERR_DB_MIGRATION_FAILED when another process holds the lock too long', async () => {
    const [pool, holder] = await freshDatabase(2)
    const held = await holder!.connect()
    try {
      await held.query(`SELECT pg_advisory_lock(${LOCK_KEY})`)
      await expect(migrate(pool!, { logger, lockWaitMs: 300, migrations: [migration(1, 'first', 'SELECT 1;')] })).rejects.toMatchObject({
        code: 'PG_ERR_DB_MIGRATION_FAILED', message: expect.stringMatching(/held the schema migration lock for over 0.3 s/),
      })
    } finally {
      await held.query(`SELECT pg_advisory_unlock(${LOCK_KEY})`)
      held.release()
    }
    expect((await migrate(pool!, { logger, migrations: [migration(1, 'first', 'SELECT 1;')] })).version).toBe(1)
  })

  it('says the database is unreachable, without the password', async () => {
    const port = await freePort()
    const pool = createDatabasePool({ url: `postgres://placeguard:s3cret-pw@127.0.0.1:${port}/placeguard`, applicationName: 'nowhere', logger, connectTimeoutMs: 2_000 })
    pools.push(pool)
    const error = await migrate(pool, { logger }).then(() => new Error('migrated a database that is not there'), (e: unknown) => e as Error)
    expect(error).toMatchObject({ code: 'PG_ERR_DB_UNREACHABLE' })
    expect(error.message).not.toContain('s3cret-pw')
  })
})

describe('loadMigrations', () => {
  const dirWith = (files: Record<string, string>): string => {
    const dir = mkdtempSync(join(tmpdir(), 'pg-migrations-'))
    for (const [file, sql] of Object.entries(files)) writeFileSync(join(dir, file), sql)
    return dir
  }

  it('reads NNNN_name.sql in version order, checksumming with LF line endings', () => {
    const dir = dirWith({ '0002_second.sql': 'SELECT 2;\r\n', '0001_first.sql': 'SELECT 1;\n' })
    try {
      expect(loadMigrations(dir)).toEqual([
        { version: 1, name: 'first', sql: 'SELECT 1;\n', checksum: checksumOf('SELECT 1;\n') },
        { version: 2, name: 'second', sql: 'SELECT 2;\n', checksum: checksumOf('SELECT 2;\n') },
      ])
    } finally {
      rmSync(dir, { recursive: true })
    }
  })

  it('refuses a misnamed file, a gap and a repeated version rather than skip one', () => {
    const cases: Array<Record<string, string>> = [{ '0001_first.sql': '', '2_second.sql': '' }, { '0001_first.sql': '', '0003_third.sql': '' }, { '0001_first.sql': '', '0001_again.sql': '' }]
    for (const files of cases) {
      const dir = dirWith(files)
      try {
        expect(() => loadMigrations(dir), Object.keys(files).join(' ')).toThrow(/NNNN_name\.sql|without gaps or repeats/)
      } finally {
        rmSync(dir, { recursive: true })
      }
    }
  })
})
