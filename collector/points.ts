/**
 * What the collector stores (docs/product.md, "InfluxDB schema"): measurement =
 * kind, tags `site` and `device`, fields = readings + `seq` + `fw`;
 * security events in `security_event`.
 */
import type { SecurityEvent } from '../shared/security-events.ts'
import { type DeviceKind, isDeviceKind } from '../shared/ids.ts'
import type { Telemetry } from '../shared/telemetry.ts'
import type { StoredPoint } from './stored-point.ts'

export const SECURITY_EVENT_MEASUREMENT = 'security_event'

export function telemetryPoint (kind: DeviceKind, site: string, deviceId: string, telemetry: Telemetry): StoredPoint {
  const { ts, ...fields } = telemetry
  return { measurement: kind, tags: { site, device: deviceId }, fields, timestampMs: ts }
}

export function securityEventPoint (event: SecurityEvent): StoredPoint {
  const tags: Record<string, string> = { type: event.type, device: event.deviceId ?? (event.claimedId ? `claimed:${event.claimedId}` : 'unknown') }
  if (event.site) tags.site = event.site
  if (event.kind) tags.kind = event.kind
  const fields: Record<string, string | number> = { reason: event.reason, count: 1 }
  if (event.code) fields.code = event.code
  if (event.remoteAddress) fields.remote_address = event.remoteAddress
  if (event.topic) fields.topic = event.topic
  if (event.serial) fields.serial = event.serial
  const at = Date.parse(event.at)
  return { measurement: SECURITY_EVENT_MEASUREMENT, tags, fields, timestampMs: Number.isNaN(at) ? Date.now() : at }
}

/** Series-milliseconds remembered; a burst spans a few, so this only bounds memory. */
const REMEMBERED_MILLISECONDS = 10_000

/**
 * Gives each event point (security events, alerts: every measurement that is
 * not a device kind) its own nanosecond within its millisecond, counting up
 * per series, so that a burst of events in one millisecond stays a burst of
 * points (InfluxDB keeps one point per measurement, tags and time). Assigned
 * once, before the point is durable, so a retried write rewrites the same
 * point. Telemetry is left alone: a redelivered reading is the same point.
 */
export class EventOrdinals {
  readonly #next = new Map<string, number>()

  assign (point: StoredPoint): void {
    if (point.ordinalNs !== undefined || isDeviceKind(point.measurement)) return
    const key = `${point.timestampMs} ${point.measurement} ${JSON.stringify(Object.entries(point.tags).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))}`
    const ordinal = this.#next.get(key) ?? 0
    // Past a million events of one series in one millisecond the last ordinal is shared; never wraps onto the first.
    point.ordinalNs = Math.min(ordinal, 999_999)
    this.#next.delete(key) // re-inserted last: the map's order is least recently used first
    this.#next.set(key, ordinal + 1)
    if (this.#next.size > REMEMBERED_MILLISECONDS) this.#next.delete(this.#next.keys().next().value!)
  }
}
