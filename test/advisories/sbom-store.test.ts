/** The SBOM part of the advisory store contract (sbom-store.contract.ts) against SQLite. */
import { SqliteAdvisoryStore } from '../../advisories/index.ts'
import { sqlitePlace } from '../helpers/store-place.ts'
import { sbomStoreContract } from './sbom-store.contract.ts'

sbomStoreContract('SQLite', sqlitePlace('advisories', (path) => new SqliteAdvisoryStore(path)))
