/**
 * The fleet read model: each device's identity, health, last readings and
 * open alerts, kept from the collector's streams and the PKI inventory;
 * last-seen facts survive a restart in a FleetStore (SQLite,
 * `<data-dir>/fleet.db`; in a collector group PostgreSQL, shared, so each
 * collector's view is the whole group's). Readers depend on FleetView; the
 * collector service feeds a FleetState.
 */
export {
  DEVICE_HEALTH, DEVICE_IDENTITIES, DEVICE_SORTS, FleetState,
  type DeviceCertificate, type DeviceIdentity, type DeviceRadio, type LorawanRegistration, type DeviceFilter, type DeviceHealth, type DeviceSort, type DeviceSummary, type FleetStateOptions, type FleetSummary, type FleetView, type TelemetrySample,
} from './fleet-state.ts'
export type { AsyncFleetStore, DeviceRecord, DeviceUpdate, FleetStore } from './fleet-store.ts'
export { SqliteFleetStore } from './sqlite-fleet-store.ts'
export { PgFleetStore, type PgFleetStoreOptions } from './pg-fleet-store.ts'
