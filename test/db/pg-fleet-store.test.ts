/**
 * PgFleetStore (fleet/pg-fleet-store.ts) against a real PostgreSQL: the
 * same contract as SQLite's, then what only a shared store must show —
 * two collectors saving the same devices at once both land.
 */
import { describe, expect, it } from 'vitest'
import type { DeviceUpdate } from '../../fleet/fleet-store.ts'
import { PgFleetStore } from '../../fleet/pg-fleet-store.ts'
import { fleetStoreContract } from '../fleet/fleet-store.contract.ts'
import { pgPlaces } from '../helpers/pg-place.ts'

const pg = pgPlaces('fleet')

fleetStoreContract('PostgreSQL', pg.newPlace((pool) => new PgFleetStore({ pool })))

describe('PgFleetStore shared by a collector group', () => {
  it('two collectors saving the same devices at once lose no message and keep the newest sighting', async () => {
    const [a, b] = [new PgFleetStore({ pool: pg.pool('fleet-a') }), new PgFleetStore({ pool: pg.pool('fleet-b') })]
    const ids = Array.from({ length: 50 }, (_, i) => `flood-${String(i).padStart(3, '0')}`)
    const batch = (round: number, firmware: string, reversed: boolean): DeviceUpdate[] => {
      const updates = ids.map((id) => ({ id, kind: 'flood', site: 'riverside', firmware, lastSeenMs: 1_772_359_200_000 + round * 1_000 + (firmware === 'b' ? 500 : 0), newMessages: 1 }))
      return reversed ? updates.reverse() : updates
    }
    // Opposite orders: saves that locked rows as given would deadlock.
    for (let round = 0; round < 10; round++) await Promise.all([a.save(batch(round, 'a', false)), b.save(batch(round, 'b', true))])
    const records = (await a.load()).devices
    expect(records).toHaveLength(50)
    for (const record of records) expect(record).toMatchObject({ messages: 20, firmware: 'b', lastSeenMs: 1_772_359_200_000 + 9_500 })
  })
})
