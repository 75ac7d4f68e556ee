import { SqliteFleetStore } from '../../fleet/sqlite-fleet-store.ts'
import { sqlitePlace } from '../helpers/store-place.ts'
import { fleetStoreContract } from './fleet-store.contract.ts'

fleetStoreContract('SQLite', sqlitePlace('fleet', (path) => new SqliteFleetStore({ path })))
