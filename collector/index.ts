/**
 * The collector room: MQTT ingest into a durable spool, and the store
 * writer that drains it into InfluxDB or the embedded store.
 */
export { Collector, type CollectorMetrics, type CollectorOptions } from './collector.ts'
export { EmbeddedStore } from './embedded-store.ts'
export { createInfluxSink } from './influx-sink.ts'
export { Spool } from './spool.ts'
export type { RejectedPoint, SpoolBatch, TelemetrySpool } from './telemetry-spool.ts'
export { StoreWriter } from './store-writer.ts'
export type { PointSink } from './stored-point.ts'
export { collectorConfigSchema, influxConfigSchema } from './config.ts'
export { StreamSpool, type IngestEntry } from './stream-spool.ts'
export { decodeMessage, TELEMETRY_FILTER, type Decoded } from './decode.ts'
export { decodeLorawan, EMPTY_LORAWAN_REGISTRY, lorawanRegistryOf, type LorawanDevice, type LorawanRegistry } from './lorawan.ts'
