/**
 * CSAF and OSV sync into SqliteAdvisoryStore (`<data-dir>/advisories.db`):
 * the contract, each `open` a connection of its own to one file (two
 * processes on one machine).
 */
import { SqliteAdvisoryStore } from '../../advisories/index.ts'
import { sqlitePlace } from '../helpers/store-place.ts'
import { advisoryStoreContract } from './advisory-sync.contract.ts'

advisoryStoreContract('SQLite', sqlitePlace('advisories', (path) => new SqliteAdvisoryStore(path)))
