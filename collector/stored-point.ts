/**
 * What travels from the collector to a time-series store, and how a store
 * answers: the contract shared by the spool, the InfluxDB sink and the
 * embedded store.
 */
import { Point } from '@influxdata/influxdb-client'

/** One point on its way to the store (PRODUCT.md, "InfluxDB schema"). */
export interface StoredPoint {
  measurement: string
  tags: Record<string, string>
  fields: Record<string, number | string | boolean>
  /** Milliseconds since the epoch. */
  timestampMs: number
}

/** A store's answer to one batch, in the opentelemetry-exporter style: never thrown. */
export type WriteResult =
  | { outcome: 'success' }
  | { outcome: 'retryable', error: string, retryAfterMs?: number }
  | { outcome: 'failure', error: string, status?: number }

/** Where the store writer sends what it drains from the spool. */
export interface PointSink {
  write: (points: StoredPoint[]) => Promise<WriteResult>
  close: () => Promise<void>
}

/**
 * Fields typed by name, never by value: InfluxDB fixes a field's type on its
 * first write and refuses a conflicting one with 400, so `temp_c: 21` must be
 * a float like `temp_c: 21.5`. `seq` is a counter and stays an exact integer.
 */
const INTEGER_FIELDS = new Set(['seq'])

const MS_PRECISION = { convertTime: (time: unknown) => String(time) }

/** One line of InfluxDB line protocol, ms precision; the client library escapes and validates. */
export function toLineProtocol (point: StoredPoint): string {
  if (!Number.isSafeInteger(point.timestampMs)) throw new TypeError(`point in "${point.measurement}" has timestamp ${point.timestampMs}, not whole milliseconds`)
  const line = new Point(point.measurement).timestamp(point.timestampMs)
  for (const [name, value] of Object.entries(point.tags)) line.tag(name, value)
  for (const [name, value] of Object.entries(point.fields)) {
    if (typeof value === 'string') line.stringField(name, value)
    else if (typeof value === 'boolean') line.booleanField(name, value)
    else if (INTEGER_FIELDS.has(name)) line.intField(name, value)
    else line.floatField(name, value)
  }
  const text = line.toLineProtocol(MS_PRECISION)
  if (text === undefined) throw new TypeError(`point in "${point.measurement}" has no measurement or no fields`)
  return text
}
