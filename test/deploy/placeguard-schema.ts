/**
 * PlaceGuard's InfluxDB schema as the collector writes it, derived from the
 * code that writes it (payload schemas, point builders, the alert path), so
 * that a schema change breaks the deployment tests instead of the dashboards.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { SecurityEvent } from '../../broker/index.ts'
import { ALERT_MEASUREMENT, Detection } from '../../detection/detection.ts'
import { TELEMETRY_SCHEMAS, type Telemetry } from '../../shared/telemetry.ts'
import { securityEventPoint, SECURITY_EVENT_MEASUREMENT, telemetryPoint } from '../../collector/points.ts'
import type { StoredPoint } from '../../collector/stored-point.ts'
import type { DeviceKind } from '../../shared/ids.ts'
import { createLogger } from '../../shared/logger.ts'

export interface MeasurementSchema {
  tags: ReadonlySet<string>
  fields: ReadonlySet<string>
}

export const KINDS = Object.keys(TELEMETRY_SCHEMAS) as DeviceKind[]

/** Every payload key of a kind, with a value of the right type; `ts` is the point's time. */
export function sampleTelemetry (kind: DeviceKind, ts: number, seq: number, reading = 1.5): Telemetry {
  const keys = Object.keys(TELEMETRY_SCHEMAS[kind].shape)
  return Object.fromEntries(keys.map((key) => [key, key === 'ts' ? ts : key === 'seq' ? seq : key === 'fw' ? '1.4.2' : reading])) as Telemetry
}

/** A security event with every optional field set, so that its point shows every tag and field. */
export function sampleSecurityEvent (at: number): SecurityEvent {
  return {
    type: 'tls-rejected', at: new Date(at).toISOString(), deviceId: 'flood-00001', site: 'riverside', kind: 'flood',
    remoteAddress: '192.0.2.10:50123', reason: 'certificate expired', code: 'CERT_HAS_EXPIRED', serial: '0a1b2c', topic: 'places/riverside/flood/flood-00001/telemetry',
  }
}

/** An alert as the collector stores it: through Detection, the collector's own path. */
export function sampleAlertPoints (): StoredPoint[] {
  const dataDir = mkdtempSync(join(tmpdir(), 'placeguard-schema-'))
  const stored: StoredPoint[] = []
  const detection = new Detection({ dataDir, logger: createLogger({ level: 'silent' }), store: (points) => stored.push(...points) })
  try {
    detection.raiseSystemAlert({
      policy: 'delivery-failing', deviceId: 'sink:webhook', severity: 'high', summary: 'alerts cannot be delivered to webhook sink "webhook"', evidence: {},
    })
  } finally {
    void detection.stop() // SQLite: closed at once
    rmSync(dataDir, { recursive: true, force: true })
  }
  return stored
}

/** Points of every measurement the collector writes: two telemetry messages per kind, a security event, an alert. */
export function samplePoints (nowMs: number): StoredPoint[] {
  return [
    ...KINDS.flatMap((kind) => [
      telemetryPoint(kind, 'riverside', `${kind}-00001`, sampleTelemetry(kind, nowMs - 150_000, 1, 1.5)),
      telemetryPoint(kind, 'riverside', `${kind}-00001`, sampleTelemetry(kind, nowMs - 30_000, 2, 2.5)),
    ]),
    securityEventPoint(sampleSecurityEvent(nowMs - 60_000)),
    ...sampleAlertPoints(),
  ]
}

/** Measurement → tag keys and field keys, as written. */
export function placeguardSchema (): ReadonlyMap<string, MeasurementSchema> {
  const schema = new Map<string, { tags: Set<string>, fields: Set<string> }>()
  for (const point of samplePoints(Date.now())) {
    const entry = schema.get(point.measurement) ?? { tags: new Set<string>(), fields: new Set<string>() }
    for (const tag of Object.keys(point.tags)) entry.tags.add(tag)
    for (const field of Object.keys(point.fields)) entry.fields.add(field)
    schema.set(point.measurement, entry)
  }
  for (const name of [...KINDS, SECURITY_EVENT_MEASUREMENT, ALERT_MEASUREMENT]) {
    if (!schema.has(name)) throw new Error(`measurement "${name}" missing from the sample points`)
  }
  return schema
}
