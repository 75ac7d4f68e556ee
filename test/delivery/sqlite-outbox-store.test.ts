import { SqliteOutboxStore } from '../../delivery/sqlite-outbox-store.ts'
import { sqlitePlace } from '../helpers/store-place.ts'
import { outboxStoreContract } from './outbox-store.contract.ts'

outboxStoreContract('SQLite', sqlitePlace('outbox', (path) => new SqliteOutboxStore({ path })))
