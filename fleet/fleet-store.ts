/**
 * Where the fleet's last-seen facts are kept between runs, and, in a
 * collector group, shared. FleetState (fleet-state.ts) is the read model,
 * in memory: connection state, open alerts, quarantines and the telemetry
 * ring live there only. What a restart must not forget (that a device was
 * ever seen, when, with which firmware, how many messages) is loaded from
 * the store at start and saved to it every few seconds, for the devices
 * that changed.
 *
 * A save merges; it never replaces a device blindly, because in a
 * collector group (PostgreSQL) several collectors save the same device:
 * around a partition move the previous holder's last flush and the new
 * holder's first ones cross, in any order. So, per device:
 *   - `lastSeenMs` only moves forward (GREATEST): a late save of older
 *     facts does not take a device back in time;
 *   - kind, site and firmware come with the newest sighting: the save
 *     whose `lastSeenMs` is at or after the kept one brings them, an older
 *     one leaves them (a device never seen, `lastSeenMs` null, brings them
 *     only to a device never seen either);
 *   - `messages` is a sum: each save adds the messages its collector
 *     counted since its previous save (`newMessages`). Two holders each
 *     add what they received, so the count never goes back and no
 *     message is counted by both or lost at a move. (Keeping the larger
 *     of two totals instead would drop what the new holder counted while
 *     it caught up with the old one's last total.) The price: a save whose
 *     commit succeeded but whose answer was lost, and which is then
 *     retried, counts its messages twice. It is a count for the operator,
 *     not evidence.
 * Every save is atomic on its own, all of a batch or none of it.
 *
 * The implementations beside this file: sqlite-fleet-store.ts
 * (`<data-dir>/fleet.db`, one collector) and pg-fleet-store.ts (the
 * group's `devices` table, an AsyncFleetStore). Every store passes the
 * same contract, test/fleet/fleet-store.contract.ts.
 *
 * Synchronous, as node:sqlite is; the PostgreSQL store is its Promisified
 * counterpart. FleetState loads a synchronous store in its constructor and
 * an asynchronous one in `load()` (or `FleetState.open`), and a timer
 * awaits its flushes, apart from message handling. `loadChangedSince` is
 * how a collector of a group reads, cheaply, what the others saved: the
 * devices saved since its previous read, not the whole fleet every few
 * seconds. Its position is the store's own (PostgreSQL: a snapshot), not a
 * time: a time would be some collector's clock, and a save retried after
 * an outage carries older ones.
 */
import type { Promisified } from '../shared/promisified.ts'

/** What is kept of one device. `kind` as stored: a reader skips kinds it does not know. */
export interface DeviceRecord {
  id: string
  kind: string
  site: string
  firmware: string | null
  lastSeenMs: number | null
  /** Messages received from the device, by every collector that held it. */
  messages: number
}

/** What a collector saves of one device: its facts, and the messages it counted since its previous save. */
export interface DeviceUpdate {
  id: string
  kind: string
  site: string
  firmware: string | null
  lastSeenMs: number | null
  /** Added to the kept count: a whole number, 0 or more. */
  newMessages: number
}

/** Devices read from a store, and where the next read of changes starts (opaque to the caller). */
export interface DeviceChanges {
  devices: DeviceRecord[]
  position: string
}

export interface FleetStore {
  /** Every device kept, in no particular order, and the position after them. */
  load: () => DeviceChanges
  /** The devices saved since `position` (by any collector, this one too), and the position after them; a position the store did not give is refused. */
  loadChangedSince: (position: string) => DeviceChanges
  /** Merges these devices into what is kept (see above), each id at most once; all or none. */
  save: (devices: DeviceUpdate[]) => void
  close: () => void
}

/** A FleetStore over a network database (PostgreSQL): the same calls, answered by Promises. */
export type AsyncFleetStore = Promisified<FleetStore>

/** Refuses a batch a store cannot merge as meant, naming the device and the fix. */
export function checkUpdates (devices: readonly DeviceUpdate[]): void {
  const ids = new Set<string>()
  for (const device of devices) {
    if (ids.has(device.id)) throw new TypeError(`fleet store: device ${device.id} appears twice in one save; send each device once, with the messages of both summed`)
    ids.add(device.id)
    if (!Number.isSafeInteger(device.newMessages) || device.newMessages < 0) {
      throw new TypeError(`fleet store: device ${device.id} has newMessages ${device.newMessages}; it must be a whole number, 0 or more (the messages counted since the previous save)`)
    }
  }
}
