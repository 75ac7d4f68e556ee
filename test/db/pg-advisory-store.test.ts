/**
 * PgAdvisoryStore (advisories/pg-advisory-store.ts) against a real
 * PostgreSQL: the same contract as SQLite's, each `open` a machine with a
 * pool of its own on one database — a sync on one goes on from another's
 * position, and two syncs of one provider at once store each advisory once.
 */
import { PgAdvisoryStore } from '../../advisories/index.ts'
import { advisoryStoreContract } from '../advisories/advisory-sync.contract.ts'
import { pgPlaces } from '../helpers/pg-place.ts'

const pg = pgPlaces('advisories')

advisoryStoreContract('PostgreSQL', pg.newPlace((pool) => new PgAdvisoryStore({ pool })))
