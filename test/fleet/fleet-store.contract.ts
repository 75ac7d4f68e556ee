/**
 * What every FleetStore must do (fleet/fleet-store.ts): run by
 * sqlite-fleet-store.test.ts for SQLite and test/db/pg-fleet-store.test.ts
 * for PostgreSQL. Every store call is awaited, so one contract holds the
 * synchronous store and the asynchronous one alike.
 */
import { describe, expect, it } from 'vitest'
import type { DeviceRecord, DeviceUpdate, FleetStore } from '../../fleet/fleet-store.ts'
import type { Promisified } from '../../shared/promisified.ts'
import { type StorePlace, storesPerTest } from '../helpers/store-place.ts'

type AnyFleetStore = FleetStore | Promisified<FleetStore>

const byId = (records: DeviceRecord[]) => [...records].sort((a, b) => a.id < b.id ? -1 : 1)
const kept = ({ newMessages, ...facts }: DeviceUpdate): DeviceRecord => ({ ...facts, messages: newMessages })

const T = 1_772_359_200_123
const flood: DeviceUpdate = { id: 'flood-001', kind: 'flood', site: 'riverside', firmware: '1.2.0', lastSeenMs: T, newMessages: 4_321 }
const never: DeviceUpdate = { id: 'housing-007', kind: 'housing', site: 'estate-north', firmware: null, lastSeenMs: null, newMessages: 0 }

export function fleetStoreContract (name: string, newPlace: () => StorePlace<AnyFleetStore>): void {
  describe(`FleetStore contract: ${name}`, () => {
    const { open } = storesPerTest(newPlace)

    it('starts empty, and gives back what it kept, nulls and millisecond times exact', async () => {
      const store = open()
      expect(await store.load()).toEqual([])
      await store.save([flood, never])
      expect(byId(await store.load())).toEqual([kept(flood), kept(never)])
      await store.save([])
      expect(await store.load()).toHaveLength(2)
    })

    it('adds up the messages of every save, and takes kind, site and firmware from the newest sighting', async () => {
      const store = open()
      await store.save([flood, never])
      const moved: DeviceUpdate = { ...never, kind: 'energy', site: 'riverside', firmware: '2.0.1', lastSeenMs: T + 100_000, newMessages: 9 }
      await store.save([moved])
      expect(byId(await store.load())).toEqual([kept(flood), { ...kept(moved), messages: 9 }])
      await store.save([{ ...flood, firmware: '1.3.0', lastSeenMs: T + 5_000, newMessages: 10 }])
      expect(byId(await store.load())[0]).toEqual({ ...kept(flood), firmware: '1.3.0', lastSeenMs: T + 5_000, messages: 4_331 })
    })

    it('never takes a device back in time: an older save adds its messages and leaves the rest', async () => {
      // Around a partition move the previous holder's last save may land after the new holder's first.
      const store = open()
      await store.save([{ ...flood, firmware: '1.3.0', lastSeenMs: T + 5_000, newMessages: 3 }])
      await store.save([{ ...flood, site: 'old-site', firmware: '1.2.0', lastSeenMs: T, newMessages: 7 }])
      expect(await store.load()).toEqual([{ ...kept(flood), firmware: '1.3.0', lastSeenMs: T + 5_000, messages: 10 }])
      // Facts of a device never seen (the inventory's) do not displace a sighting…
      await store.save([{ ...flood, site: 'inventory-site', firmware: null, lastSeenMs: null, newMessages: 0 }])
      expect(await store.load()).toEqual([{ ...kept(flood), firmware: '1.3.0', lastSeenMs: T + 5_000, messages: 10 }])
      // …but replace those of a device never seen either; and at the same moment, the later save wins.
      await store.save([{ ...never, site: 'estate-south' }])
      await store.save([{ ...flood, firmware: '1.4.0', lastSeenMs: T + 5_000, newMessages: 1 }])
      expect(byId(await store.load())).toEqual([{ ...kept(flood), firmware: '1.4.0', lastSeenMs: T + 5_000, messages: 11 }, { ...kept(never), site: 'estate-south' }])
    })

    it('answers the devices seen at or after a moment, and not those never seen', async () => {
      const store = open()
      const later: DeviceUpdate = { ...flood, id: 'flood-002', lastSeenMs: T + 1 }
      await store.save([flood, later, never])
      expect(byId(await store.loadSeenSince(T))).toEqual([kept(flood), kept(later)])
      expect(await store.loadSeenSince(T + 1)).toEqual([kept(later)])
      expect(await store.loadSeenSince(T + 2)).toEqual([])
    })

    it('keeps a kind it does not know as it is: the reader decides', async () => {
      const store = open()
      await store.save([{ ...flood, kind: 'lighthouse' }])
      expect(await store.load()).toEqual([{ ...kept(flood), kind: 'lighthouse' }])
    })

    it('saves all of a batch or none of it, and refuses a device twice or a count below zero by name', async () => {
      const store = open()
      await store.save([never])
      const broken = { ...flood, id: 'flood-002', site: null } as unknown as DeviceUpdate
      await expect(async () => { await store.save([{ ...never, newMessages: 50 }, flood, broken]) }).rejects.toThrow()
      await expect(async () => { await store.save([flood, { ...flood, newMessages: 1 }]) }).rejects.toThrow(/flood-001 appears twice/)
      await expect(async () => { await store.save([flood, { ...never, newMessages: -1 }]) }).rejects.toThrow(/housing-007 has newMessages -1/)
      expect(await store.load()).toEqual([kept(never)])
    })

    it('keeps what it saved across a close and reopen', async () => {
      const first = open()
      await first.save([flood, never])
      await first.close()
      expect(byId(await open().load())).toEqual([kept(flood), kept(never)])
    })
  })
}
