/**
 * Telemetry payloads (docs/product.md), validated per kind with zod: a payload
 * that fails is not stored as telemetry; it becomes a `payload-invalid`
 * security event whose reason names the field.
 */
import { z } from 'zod'
import type { DeviceKind } from './ids.ts'

const common = {
  ts: z.number().int().positive().describe('device time, ms since the epoch'),
  seq: z.number().int().nonnegative().describe('per-device message counter'),
  fw: z.string().regex(/^\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.-]+)?$/, 'must be a semantic version').max(64),
}
const reading = z.number().refine(Number.isFinite, 'must be a finite number')

export const TELEMETRY_SCHEMAS = {
  flood: z.strictObject({ ...common, level_cm: reading, battery_v: reading }),
  energy: z.strictObject({ ...common, power_kw: reading, voltage_v: reading, energy_kwh: reading }),
  housing: z.strictObject({ ...common, temp_c: reading, humidity_pct: reading, co2_ppm: reading }),
} as const

/** The readings of each kind, in schema order (the fields other than ts, seq, fw). */
export const READING_FIELDS = Object.fromEntries(Object.entries(TELEMETRY_SCHEMAS)
  .map(([kind, schema]) => [kind, Object.keys(schema.shape).filter((field) => !(field in common))])) as Record<DeviceKind, string[]>

export type Telemetry = z.infer<typeof TELEMETRY_SCHEMAS[DeviceKind]>

export const MAX_PAYLOAD_BYTES = 4096

export type ParseResult = { ok: true, telemetry: Telemetry } | { ok: false, reason: string }

export function parseTelemetry (kind: DeviceKind, payload: Buffer): ParseResult {
  if (payload.length > MAX_PAYLOAD_BYTES) return { ok: false, reason: `payload of ${payload.length} bytes exceeds ${MAX_PAYLOAD_BYTES}` }
  let json: unknown
  try {
    json = JSON.parse(payload.toString('utf8'))
  } catch (error) {
    return { ok: false, reason: `not JSON: ${(error as Error).message}` }
  }
  const result = TELEMETRY_SCHEMAS[kind].safeParse(json)
  if (result.success) return { ok: true, telemetry: result.data }
  const issue = result.error.issues[0]!
  const field = issue.path.join('.') || '(payload)'
  return { ok: false, reason: `${field}: ${issue.message}` }
}
