/**
 * Contract places in PostgreSQL: one server per test file (started in
 * beforeAll), and a fresh database per test, migrated with db/migrate.ts
 * before the test begins. Each `open` of a place is one collector: a pool
 * of its own on the test's database, ended when the place is disposed of.
 */
import { afterAll, beforeAll, beforeEach } from 'vitest'
import { createDatabasePool, migrate, type Pool } from '../../db/index.ts'
import { createLogger } from '../../shared/logger.ts'
import { startPostgres, type RunningPostgres } from './postgres.ts'
import type { StorePlace } from './store-place.ts'

const logger = createLogger({ level: 'silent' })

export interface PgPlaces {
  /** For a contract: a place on this test's database. */
  newPlace: <S>(open: (pool: Pool) => S) => () => StorePlace<S>
  /** A pool on this test's database (ended after the file), named as a collector would be. */
  pool: (applicationName: string, max?: number) => Pool
  /** The server (for waitForLockWait and the like). */
  server: () => RunningPostgres
  /** This test's database (for a connection outside a pool: a LISTEN). */
  url: () => string
}

export function pgPlaces (name: string): PgPlaces {
  let server: RunningPostgres | undefined
  let url = ''
  let databases = 0
  const pools: Pool[] = []
  const pool = (applicationName: string, max = 4): Pool => {
    const created = createDatabasePool({ url, applicationName, logger, max })
    pools.push(created)
    return created
  }
  beforeAll(async () => { server = await startPostgres() })
  beforeEach(async () => {
    url = await server!.createDatabase(`${name}_${++databases}`)
    const migrator = createDatabasePool({ url, applicationName: 'test-migrate', logger, max: 1 })
    try {
      await migrate(migrator, { logger })
    } finally {
      await migrator.end()
    }
  })
  afterAll(async () => {
    await Promise.all(pools.map((p) => p.end()))
    await server?.stop()
  })
  return {
    pool,
    server: () => server!,
    url: () => url,
    newPlace: <S>(open: (pool: Pool) => S) => () => {
      const mine: Pool[] = []
      return {
        open: () => {
          const created = createDatabasePool({ url, applicationName: `test-${name}-${mine.length}`, logger, max: 4 })
          mine.push(created)
          return open(created)
        },
        dispose: async () => { await Promise.all(mine.map((p) => p.end())) },
      }
    },
  }
}
