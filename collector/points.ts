/**
 * What the collector stores (PRODUCT.md, "InfluxDB schema"): measurement =
 * kind, tags `site` and `device`, fields = readings + `seq` + `fw`;
 * security events in `security_event`.
 */
import type { SecurityEvent } from '../broker/index.ts'
import type { DeviceKind } from '../shared/ids.ts'
import type { Telemetry } from './payload-schema.ts'
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
