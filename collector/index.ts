/**
 * The collector room: MQTT ingest into a durable spool, the store writer,
 * detection and the live fleet state, assembled by createCollectorService.
 */
export { createCollectorService, type CollectorService, type PipelineMetrics } from './service.ts'
export { SHIPPED_POLICIES_DIR } from './detection.ts'
export {
  DEVICE_HEALTH, DEVICE_SORTS, FleetState,
  type DeviceCertificate, type DeviceFilter, type DeviceHealth, type DeviceSort, type DeviceSummary, type FleetSummary, type TelemetrySample,
} from './fleet-state.ts'
