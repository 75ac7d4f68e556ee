/**
 * What every FleetStore must do (fleet/fleet-store.ts): run by
 * sqlite-fleet-store.test.ts for SQLite, and by any later store's test
 * against a place of its own.
 */
import { describe, expect, it } from 'vitest'
import type { DeviceRecord, FleetStore } from '../../fleet/fleet-store.ts'
import { type StorePlace, storesPerTest } from '../helpers/store-place.ts'

const byId = (records: DeviceRecord[]) => [...records].sort((a, b) => a.id < b.id ? -1 : 1)

const flood: DeviceRecord = { id: 'flood-001', kind: 'flood', site: 'riverside', firmware: '1.2.0', lastSeenMs: 1_772_359_200_123, messages: 4_321 }
const never: DeviceRecord = { id: 'housing-007', kind: 'housing', site: 'estate-north', firmware: null, lastSeenMs: null, messages: 0 }

export function fleetStoreContract (name: string, newPlace: () => StorePlace<FleetStore>): void {
  describe(`FleetStore contract: ${name}`, () => {
    const { open } = storesPerTest(newPlace)

    it('starts empty, and gives back what it kept, nulls and millisecond times exact', () => {
      const store = open()
      expect(store.load()).toEqual([])
      store.save([flood, never])
      expect(byId(store.load())).toEqual([flood, never])
      store.save([])
      expect(store.load()).toHaveLength(2)
    })

    it('replaces a device by its id, every field, and leaves the others', () => {
      const store = open()
      store.save([flood, never])
      const moved: DeviceRecord = { ...never, kind: 'energy', site: 'riverside', firmware: '2.0.1', lastSeenMs: 1_772_359_300_000, messages: 9 }
      store.save([moved])
      expect(byId(store.load())).toEqual([flood, moved])
      const forgotten: DeviceRecord = { ...flood, firmware: null, lastSeenMs: null }
      store.save([forgotten])
      expect(byId(store.load())).toEqual([forgotten, moved])
    })

    it('keeps a kind it does not know as it is: the reader decides', () => {
      const store = open()
      store.save([{ ...flood, kind: 'lighthouse' }])
      expect(store.load()).toEqual([{ ...flood, kind: 'lighthouse' }])
    })

    it('saves all of a batch or none of it', () => {
      const store = open()
      store.save([never])
      const broken = { ...flood, id: 'flood-002', site: null } as unknown as DeviceRecord
      expect(() => store.save([{ ...never, messages: 50 }, flood, broken])).toThrow()
      expect(store.load()).toEqual([never])
    })

    it('keeps what it saved across a close and reopen', () => {
      const first = open()
      first.save([flood, never])
      first.close()
      expect(byId(open().load())).toEqual([flood, never])
    })
  })
}
