/**
 * What travels from the collector to a time-series store, and how a store
 * answers: the contract shared by the spool, the InfluxDB sink and the
 * embedded store.
 */
import { Point } from '@influxdata/influxdb-client'
import type { StoredPoint } from '../shared/stored-point.ts'

export type { StoredPoint }

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
const INTEGER_FIELDS = new Set(['seq', 'gateways'])

const NS_PRECISION = { convertTime: (time: unknown) => String(time) }

/**
 * Raw CR and LF end a line in line protocol (InfluxDB, and victoria-metrics
 * splits on them before parsing), and line protocol has no escape for them:
 * a device string carrying one could inject a point (STRIDE T). They are
 * written as the two characters `\n` / `\r`.
 */
function withoutLineBreaks (value: string): string {
  return value.replaceAll('\r', '\\r').replaceAll('\n', '\\n')
}

/**
 * The client escapes commas, equals signs and spaces in tag values but not
 * backslashes, so a value ending in `\` would escape the separator after it
 * and swallow the next tag. InfluxDB reads `\\` as one backslash.
 */
function tagValue (value: string): string {
  return withoutLineBreaks(value).replaceAll('\\', '\\\\')
}

/** Nanoseconds since the epoch as line protocol wants them, exactly (beyond 2^53, so as text). */
export function timestampNs (point: Pick<StoredPoint, 'timestampMs' | 'ordinalNs'>): string {
  return `${point.timestampMs}${String(point.ordinalNs ?? 0).padStart(6, '0')}`
}

/** One line of InfluxDB line protocol, ns precision; the client library escapes and validates. */
export function toLineProtocol (point: StoredPoint): string {
  if (!Number.isSafeInteger(point.timestampMs) || point.timestampMs < 0) throw new TypeError(`point in "${point.measurement}" has timestamp ${point.timestampMs}, not whole milliseconds`)
  const ordinal = point.ordinalNs ?? 0
  if (!Number.isSafeInteger(ordinal) || ordinal < 0 || ordinal > 999_999) throw new TypeError(`point in "${point.measurement}" has ordinal ${ordinal}, not 0–999,999 ns`)
  const line = new Point(point.measurement).timestamp(timestampNs(point))
  for (const [name, value] of Object.entries(point.tags)) line.tag(name, tagValue(value))
  for (const [name, value] of Object.entries(point.fields)) {
    if (typeof value === 'string') line.stringField(name, withoutLineBreaks(value))
    else if (typeof value === 'boolean') line.booleanField(name, value)
    else if (INTEGER_FIELDS.has(name)) line.intField(name, value)
    else line.floatField(name, value)
  }
  const text = line.toLineProtocol(NS_PRECISION)
  if (text === undefined) throw new TypeError(`point in "${point.measurement}" has no measurement or no fields`)
  return text
}
