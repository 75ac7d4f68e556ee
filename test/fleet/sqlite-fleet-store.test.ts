import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { describe, expect, it } from 'vitest'
import { SqliteFleetStore } from '../../fleet/sqlite-fleet-store.ts'
import { sqlitePlace } from '../helpers/store-place.ts'
import { fleetStoreContract } from './fleet-store.contract.ts'

fleetStoreContract('SQLite', sqlitePlace('fleet', (path) => new SqliteFleetStore({ path })))

describe('SqliteFleetStore on a file of an earlier release', () => {
  it('keeps its devices, and numbers the saves from then on', () => {
    const dir = mkdtempSync(join(tmpdir(), 'placeguard-fleet-old-'))
    try {
      const path = join(dir, 'fleet.db')
      const old = new DatabaseSync(path)
      old.exec('CREATE TABLE devices (id TEXT PRIMARY KEY, kind TEXT NOT NULL, site TEXT NOT NULL, firmware TEXT, last_seen INTEGER, messages INTEGER NOT NULL)')
      old.exec('INSERT INTO devices VALUES (\'flood-001\', \'flood\', \'riverside\', \'1.2.0\', 1772359200123, 41)')
      old.close()
      const store = new SqliteFleetStore({ path })
      const { devices, position } = store.load()
      expect(devices).toEqual([{ id: 'flood-001', kind: 'flood', site: 'riverside', firmware: '1.2.0', lastSeenMs: 1_772_359_200_123, messages: 41 }])
      store.save([{ id: 'flood-001', kind: 'flood', site: 'riverside', firmware: '1.3.0', lastSeenMs: 1_772_359_300_000, newMessages: 1 }])
      expect(store.loadChangedSince(position).devices).toEqual([{ id: 'flood-001', kind: 'flood', site: 'riverside', firmware: '1.3.0', lastSeenMs: 1_772_359_300_000, messages: 42 }])
      store.close()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
