/**
 * Where the fleet's last-seen facts are kept between runs. FleetState
 * (fleet-state.ts) is the read model, in memory: connection state, open
 * alerts, quarantines and the telemetry ring live there only. What a
 * restart must not forget (that a device was ever seen, when, with which
 * firmware, how many messages) is loaded from the store at start and
 * saved to it every few seconds, for the devices that changed.
 *
 * The implementation beside this file: sqlite-fleet-store.ts
 * (`<data-dir>/fleet.db`). Every store passes the same contract,
 * test/fleet/fleet-store.contract.ts.
 *
 * Synchronous, as node:sqlite is: FleetState loads in its constructor and
 * flushes from a timer and at close. An asynchronous backend fits with
 * Promise results: `load` before the FleetState is built (a factory
 * awaiting it, then passing the records in) and `save` awaited by the
 * flush timer, which already runs apart from message handling. A store
 * shared by a collector group would keep, per device, the latest
 * `lastSeenMs` of the group (`GREATEST` in PostgreSQL) rather than the
 * saver's; that choice belongs with the shared fleet view it would serve.
 */

/** What is kept of one device. `kind` as stored: a reader skips kinds it does not know. */
export interface DeviceRecord {
  id: string
  kind: string
  site: string
  firmware: string | null
  lastSeenMs: number | null
  messages: number
}

export interface FleetStore {
  /** Every device kept, in no particular order. */
  load: () => DeviceRecord[]
  /** Keeps these devices, each replacing what was kept under its id; all or none. */
  save: (devices: DeviceRecord[]) => void
  close: () => void
}
