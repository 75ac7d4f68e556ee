/**
 * The unit every room hands to the time-series store: telemetry and
 * security events from the collector, alert changes from detection. How a
 * store encodes and writes it is the collector's business.
 */

/** One point on its way to the store (docs/product.md, "InfluxDB schema"). */
export interface StoredPoint {
  measurement: string
  tags: Record<string, string>
  fields: Record<string, number | string | boolean>
  /** Milliseconds since the epoch. */
  timestampMs: number
  /**
   * Nanoseconds after `timestampMs` (0–999,999) that make an event its own
   * point: InfluxDB identifies a point by measurement, tags and time, so two
   * events of one series in the same millisecond would otherwise merge.
   * Telemetry has none: a redelivered reading must stay the same point.
   */
  ordinalNs?: number
}
