/**
 * The SBOM part of the advisory store contract (test/advisories/
 * sbom-store.contract.ts) against a real PostgreSQL: PgAdvisoryStore with
 * migration 0006, each `open` a machine with a pool of its own.
 */
import { PgAdvisoryStore } from '../../advisories/index.ts'
import { sbomStoreContract } from '../advisories/sbom-store.contract.ts'
import { pgPlaces } from '../helpers/pg-place.ts'

const pg = pgPlaces('sboms')

sbomStoreContract('PostgreSQL', pg.newPlace((pool) => new PgAdvisoryStore({ pool })))
