/**
 * What travels from the collector to a time-series store, and how a store
 * answers: the contract shared by the spool, the InfluxDB sink and the
 * embedded store.
 */
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

/**
 * Raw CR and LF end a line in line protocol (InfluxDB, and victoria-metrics
 * splits on them before parsing), and line protocol has no escape for them:
 * a device string carrying one could inject a point (STRIDE T). They are
 * written as the two characters `\n` / `\r`.
 */
function withoutLineBreaks (value: string): string {
  return LINE_BREAK.test(value) ? value.replaceAll('\r', '\\r').replaceAll('\n', '\\n') : value
}
const LINE_BREAK = /[\r\n]/

/**
 * The client escapes commas, equals signs and spaces in tag values but not
 * backslashes, so a value ending in `\` would escape the separator after it
 * and swallow the next tag. InfluxDB reads `\\` as one backslash.
 */
function tagValue (value: string): string {
  const text = withoutLineBreaks(value)
  return text.includes('\\') ? text.replaceAll('\\', '\\\\') : text
}

/** Nanoseconds since the epoch as line protocol wants them, exactly (beyond 2^53, so as text). */
export function timestampNs (point: Pick<StoredPoint, 'timestampMs' | 'ordinalNs'>): string {
  return `${point.timestampMs}${String(point.ordinalNs ?? 0).padStart(6, '0')}`
}

/**
 * The client library's escapes (@influxdata/influxdb-client 1.35, `escape`):
 * measurements escape comma, space and the three whitespace controls; tag
 * keys, tag values and field keys the equals sign too; string field values
 * are quoted with `"` and `\` escaped. Written out here because the
 * collector builds every point's line twice (the spool's check, the write)
 * and the client's Point, built field by field and sorted, was a tenth of
 * the collector's time; test/collector/stored-point.test.ts holds the two
 * to the same output.
 */
const MEASUREMENT_ESCAPES: Record<string, string> = { ',': '\\,', ' ': '\\ ', '\n': '\\n', '\r': '\\r', '\t': '\\t' }
const TAG_ESCAPES: Record<string, string> = { ...MEASUREMENT_ESCAPES, '=': '\\=' }
// Tested before replacing: almost every name and value has nothing to escape.
const MEASUREMENT_SPECIAL = /[, \n\r\t]/
const TAG_SPECIAL = /[, =\n\r\t]/
const QUOTED_SPECIAL = /["\\]/
const escapeMeasurement = (text: string): string => MEASUREMENT_SPECIAL.test(text) ? text.replace(/[, \n\r\t]/g, (c) => MEASUREMENT_ESCAPES[c]!) : text
const escapeTag = (text: string): string => TAG_SPECIAL.test(text) ? text.replace(/[, =\n\r\t]/g, (c) => TAG_ESCAPES[c]!) : text
const quoted = (text: string): string => `"${QUOTED_SPECIAL.test(text) ? text.replace(/["\\]/g, (c) => `\\${c}`) : text}"`

/** A field's value as line protocol writes it; throws, as the client does, for a number it cannot write. */
function fieldValue (name: string, value: unknown): string {
  if (typeof value === 'string') return quoted(withoutLineBreaks(value))
  if (typeof value === 'boolean') return value ? 'T' : 'F'
  if (INTEGER_FIELDS.has(name)) {
    const n = typeof value === 'number' ? value : parseInt(String(value))
    if (Number.isNaN(n) || n <= -9223372036854776e3 || n >= 9223372036854776e3) throw new Error(`invalid integer value for field '${name}': '${String(value)}'!`)
    return `${Math.floor(n)}i`
  }
  const n = typeof value === 'number' ? value : parseFloat(value as string)
  if (!Number.isFinite(n)) throw new Error(`invalid float value for field '${name}': ${String(value)}`)
  return String(n)
}

/** One line of InfluxDB line protocol, ns precision, escaped and validated as the client library does (keys sorted, empty ones and empty tag values left out). */
export function toLineProtocol (point: StoredPoint): string {
  if (!Number.isSafeInteger(point.timestampMs) || point.timestampMs < 0) throw new TypeError(`point in "${point.measurement}" has timestamp ${point.timestampMs}, not whole milliseconds`)
  const ordinal = point.ordinalNs ?? 0
  if (!Number.isSafeInteger(ordinal) || ordinal < 0 || ordinal > 999_999) throw new TypeError(`point in "${point.measurement}" has ordinal ${ordinal}, not 0–999,999 ns`)
  // Every value is checked, in the order given, before anything is written (the client throws as each field is added).
  const values = Object.create(null) as Record<string, string>
  for (const name in point.fields) values[name] = fieldValue(name, point.fields[name])
  let fields = ''
  for (const name of Object.keys(values).sort()) {
    if (name === '') continue
    fields += `${fields.length > 0 ? ',' : ''}${escapeTag(name)}=${values[name]!}`
  }
  if (!point.measurement || fields.length === 0) throw new TypeError(`point in "${point.measurement}" has no measurement or no fields`)
  let tags = ''
  for (const name of Object.keys(point.tags).sort()) {
    const value = point.tags[name]
    if (name === '' || !value) continue
    tags += `,${escapeTag(name)}=${escapeTag(tagValue(value))}`
  }
  return `${escapeMeasurement(point.measurement)}${tags} ${fields} ${timestampNs(point)}`
}
