import type { Finding, PreviousTelemetry, TelemetryObservation } from '../finding.ts'
import type { PolicyOf } from '../schema.ts'

/**
 * value-implausible: a reading outside its physical range, a jump larger
 * than physics allows between two readings, or a meter running backwards.
 * Reports the first violation found, naming the reading and the bound.
 */
export function valueImplausibleRule (policy: PolicyOf<'value-implausible'>, observation: TelemetryObservation, previous: PreviousTelemetry | undefined): Finding | undefined {
  const bounds = policy.params.readings[observation.kind] ?? {}
  for (const [reading, limit] of Object.entries(bounds)) {
    const value = observation.readings[reading]
    if (value === undefined) continue
    const before = previous?.readings[reading]
    let problem: string | undefined
    if (limit.min !== undefined && value < limit.min) problem = `${reading} ${value} is below ${limit.min}`
    else if (limit.max !== undefined && value > limit.max) problem = `${reading} ${value} is above ${limit.max}`
    else if (before !== undefined && limit.monotonic && value < before) problem = `${reading} went backwards from ${before} to ${value}`
    else if (before !== undefined && limit.maxStep !== undefined && Math.abs(value - before) > limit.maxStep) problem = `${reading} jumped from ${before} to ${value} (more than ${limit.maxStep})`
    if (problem) {
      return {
        policy: 'value-implausible',
        deviceId: observation.deviceId,
        severity: policy.severity,
        summary: problem,
        evidence: { reading, value, previous: before ?? null, min: limit.min ?? null, max: limit.max ?? null, maxStep: limit.maxStep ?? null, monotonic: limit.monotonic ?? false },
      }
    }
  }
  return undefined
}
