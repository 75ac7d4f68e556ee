/**
 * The operator's side of the audit trail: `placeguard audit-trail verify`
 * checks the trail the collectors write — the group's PostgreSQL with a
 * database URL, else `<data-dir>/audit.db` — without writing to it.
 */
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { type AuditVerdict, PgAuditStore, SqliteAuditStore } from '../audit/index.ts'
import { createDatabasePool, redactDatabaseUrl } from '../db/index.ts'
import { PlaceGuardError } from '../shared/errors.ts'
import { createLogger } from '../shared/logger.ts'
import type { Config } from './config.ts'

export interface AuditTrailCheck {
  /** Where the trail was read: the file, or the database URL without its password. */
  trail: string
  verdict: AuditVerdict
}

export async function verifyAuditTrail (config: Pick<Config, 'dataDir' | 'databaseUrl'>): Promise<AuditTrailCheck> {
  if (config.databaseUrl) {
    const trail = redactDatabaseUrl(config.databaseUrl)
    const pool = createDatabasePool({ url: config.databaseUrl, applicationName: 'placeguard-audit-verify', logger: createLogger({ level: 'silent' }), max: 1 })
    try {
      return { trail, verdict: await new PgAuditStore({ pool }).verify() }
    } catch (error) {
      throw new PlaceGuardError('PG_ERR_DB_UNREACHABLE', `cannot read the audit trail in ${trail}: ${(error as Error).message}`, { field: 'databaseUrl', cause: error })
    } finally {
      await pool.end()
    }
  }
  const path = join(config.dataDir, 'audit.db')
  // No file: no operator has acted through this data directory's API yet.
  if (!existsSync(path)) return { trail: path, verdict: { intact: true, entries: 0 } }
  const store = new SqliteAuditStore({ path, readOnly: true })
  try {
    return { trail: path, verdict: store.verify() }
  } finally {
    store.close()
  }
}
