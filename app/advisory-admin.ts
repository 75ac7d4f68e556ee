/**
 * The operator's side of the advisories: `placeguard advisories sync|list`
 * work on the store the collectors read — the group's PostgreSQL with a
 * database URL (`PLACEGUARD_DATABASE_URL`), else `<data-dir>/advisories.db`.
 * Over PostgreSQL the schema is migrated first, as a collector does at
 * start, so a sync may run before any collector of this version has.
 */
import { mkdirSync } from 'node:fs'
import { advisoriesPath, type AdvisoryStore, type AsyncAdvisoryStore, openAdvisoryStore, PgAdvisoryStore } from '../advisories/index.ts'
import { createDatabasePool, migrate, redactDatabaseUrl } from '../db/index.ts'
import { PlaceGuardError } from '../shared/errors.ts'
import { createLogger } from '../shared/logger.ts'
import type { Config } from './config.ts'

export interface OpenedAdvisories {
  store: AdvisoryStore | AsyncAdvisoryStore
  /** Where they are: the file, or the database URL without its password. */
  where: string
  close: () => Promise<void>
}

export async function openAdvisories (config: Pick<Config, 'dataDir' | 'databaseUrl'>): Promise<OpenedAdvisories> {
  if (config.databaseUrl) {
    const where = redactDatabaseUrl(config.databaseUrl)
    const logger = createLogger({ level: 'silent' })
    const pool = createDatabasePool({ url: config.databaseUrl, applicationName: 'placeguard-advisories', logger })
    try {
      await migrate(pool, { logger })
    } catch (error) {
      await pool.end()
      if (error instanceof PlaceGuardError) throw error
      throw new PlaceGuardError('PG_ERR_DB_UNREACHABLE', `cannot open the advisories in ${where}: ${(error as Error).message}`, { field: 'databaseUrl', cause: error })
    }
    return { store: new PgAdvisoryStore({ pool }), where, close: () => pool.end() }
  }
  mkdirSync(config.dataDir, { recursive: true })
  const store = openAdvisoryStore(config.dataDir)
  return { store, where: advisoriesPath(config.dataDir), close: async () => { store.close() } }
}
