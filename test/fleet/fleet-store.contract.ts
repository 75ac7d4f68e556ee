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
/** Every device the store keeps, by id. */
const loaded = async (store: AnyFleetStore): Promise<DeviceRecord[]> => byId((await store.load()).devices)
const kept = ({ newMessages, ...facts }: DeviceUpdate): DeviceRecord => ({ ...facts, messages: newMessages })

const T = 1_772_359_200_123
const flood: DeviceUpdate = { id: 'flood-001', kind: 'flood', site: 'riverside', firmware: '1.2.0', lastSeenMs: T, newMessages: 4_321 }
const never: DeviceUpdate = { id: 'housing-007', kind: 'housing', site: 'estate-north', firmware: null, lastSeenMs: null, newMessages: 0 }

export function fleetStoreContract (name: string, newPlace: () => StorePlace<AnyFleetStore>): void {
  describe(`FleetStore contract: ${name}`, () => {
    const { open } = storesPerTest(newPlace)

    it('starts empty, and gives back what it kept, nulls and millisecond times exact', async () => {
      const store = open()
      expect(await loaded(store)).toEqual([])
      await store.save([flood, never])
      expect(await loaded(store)).toEqual([kept(flood), kept(never)])
      await store.save([])
      expect(await loaded(store)).toHaveLength(2)
    })

    it('adds up the messages of every save, and takes kind, site and firmware from the newest sighting', async () => {
      const store = open()
      await store.save([flood, never])
      const moved: DeviceUpdate = { ...never, kind: 'energy', site: 'riverside', firmware: '2.0.1', lastSeenMs: T + 100_000, newMessages: 9 }
      await store.save([moved])
      expect(await loaded(store)).toEqual([kept(flood), { ...kept(moved), messages: 9 }])
      await store.save([{ ...flood, firmware: '1.3.0', lastSeenMs: T + 5_000, newMessages: 10 }])
      expect((await loaded(store))[0]).toEqual({ ...kept(flood), firmware: '1.3.0', lastSeenMs: T + 5_000, messages: 4_331 })
    })

    it('never takes a device back in time: an older save adds its messages and leaves the rest', async () => {
      // Around a partition move the previous holder's last save may land after the new holder's first.
      const store = open()
      await store.save([{ ...flood, firmware: '1.3.0', lastSeenMs: T + 5_000, newMessages: 3 }])
      await store.save([{ ...flood, site: 'old-site', firmware: '1.2.0', lastSeenMs: T, newMessages: 7 }])
      expect(await loaded(store)).toEqual([{ ...kept(flood), firmware: '1.3.0', lastSeenMs: T + 5_000, messages: 10 }])
      // Facts of a device never seen (the inventory's) do not displace a sighting…
      await store.save([{ ...flood, site: 'inventory-site', firmware: null, lastSeenMs: null, newMessages: 0 }])
      expect(await loaded(store)).toEqual([{ ...kept(flood), firmware: '1.3.0', lastSeenMs: T + 5_000, messages: 10 }])
      // …but replace those of a device never seen either; and at the same moment, the later save wins.
      await store.save([{ ...never, site: 'estate-south' }])
      await store.save([{ ...flood, firmware: '1.4.0', lastSeenMs: T + 5_000, newMessages: 1 }])
      expect(await loaded(store)).toEqual([{ ...kept(flood), firmware: '1.4.0', lastSeenMs: T + 5_000, messages: 11 }, { ...kept(never), site: 'estate-south' }])
    })

    it('answers the devices saved since a position it gave, every save once, and refuses a position it did not give', async () => {
      const store = open()
      const empty = await store.load()
      expect(empty.devices).toEqual([])
      await store.save([flood, never])
      const first = await store.loadChangedSince(empty.position)
      expect(byId(first.devices)).toEqual([kept(flood), kept(never)])
      expect((await store.loadChangedSince(first.position)).devices).toEqual([])
      // Only what a save touched since, whatever its times: a save of older facts is news too (its count moved).
      await store.save([{ ...flood, lastSeenMs: T - 3_600_000, newMessages: 1 }])
      const second = await store.loadChangedSince(first.position)
      expect(second.devices).toEqual([{ ...kept(flood), messages: 4_322 }])
      expect((await store.loadChangedSince(second.position)).devices).toEqual([])
      // The position of a full load leads on in the same way.
      await store.save([never])
      expect((await store.loadChangedSince((await store.load()).position)).devices).toEqual([])
      await expect(async () => { await store.loadChangedSince('yesterday') }).rejects.toThrow()
    })

    it('a second store on the same place reads the first one\'s saves as changes', async () => {
      const [reader, writer] = [open(), open()]
      const { position } = await reader.load()
      await writer.save([flood])
      expect((await reader.loadChangedSince(position)).devices).toEqual([kept(flood)])
    })

    it('keeps a kind it does not know as it is: the reader decides', async () => {
      const store = open()
      await store.save([{ ...flood, kind: 'lighthouse' }])
      expect(await loaded(store)).toEqual([{ ...kept(flood), kind: 'lighthouse' }])
    })

    it('saves all of a batch or none of it, and refuses a device twice or a count below zero by name', async () => {
      const store = open()
      await store.save([never])
      const broken = { ...flood, id: 'flood-002', site: null } as unknown as DeviceUpdate
      await expect(async () => { await store.save([{ ...never, newMessages: 50 }, flood, broken]) }).rejects.toThrow()
      await expect(async () => { await store.save([flood, { ...flood, newMessages: 1 }]) }).rejects.toThrow(/flood-001 appears twice/)
      await expect(async () => { await store.save([flood, { ...never, newMessages: -1 }]) }).rejects.toThrow(/housing-007 has newMessages -1/)
      expect(await loaded(store)).toEqual([kept(never)])
    })

    it('keeps what it saved across a close and reopen', async () => {
      const first = open()
      await first.save([flood, never])
      await first.close()
      expect(await loaded(open())).toEqual([kept(flood), kept(never)])
    })
  })
}
