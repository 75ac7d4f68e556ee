import type { Evidence } from '../shared/alert-contract.ts'
import type { PolicyId } from './catalogue.ts'
import type { Severity } from './schema.ts'

/** What a rule concludes about one device; the alert engine turns findings into alerts. */
export interface Finding {
  policy: PolicyId
  deviceId: string
  severity: Severity
  /** One line for a person: what was seen, against which threshold. */
  summary: string
  /** The facts behind it: values, thresholds, times. */
  evidence: Evidence
  /** Where the device is, when the engine knows (set by the engine, not the rules). */
  site?: string | null
  kind?: string | null
}

/** One telemetry message as the rules see it: validated, with where it came from. */
export interface TelemetryObservation {
  deviceId: string
  kind: 'flood' | 'energy' | 'housing'
  site: string
  ts: number
  seq: number
  fw: string
  readings: Record<string, number>
  receivedAtMs: number
}

/** What the engine remembers of a device's previous message. */
export interface PreviousTelemetry {
  seq: number
  ts: number
  fw: string
  readings: Record<string, number>
}
