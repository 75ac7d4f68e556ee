import { SqliteAlertStore } from '../../detection/sqlite-alert-store.ts'
import { sqlitePlace } from '../helpers/store-place.ts'
import { alertStoreContract } from './alert-store.contract.ts'

alertStoreContract('SQLite', sqlitePlace('alerts', (path) => new SqliteAlertStore({ path })))
