import type { Finding, PreviousTelemetry, TelemetryObservation } from '../finding.ts'
import type { PolicyOf } from '../schema.ts'

/**
 * replay: a `seq` repeated or going backwards. A device that rebooted
 * restarts at 0 with a later `ts`, so a backwards seq with a later
 * timestamp near 0 is a reboot, not a replay; a repeated seq never is.
 */
export function replayRule (policy: PolicyOf<'replay'>, observation: TelemetryObservation, previous: PreviousTelemetry | undefined): Finding | undefined {
  if (!previous || observation.seq > previous.seq) return undefined
  const reboot = observation.seq < previous.seq && observation.seq <= 1 && observation.ts > previous.ts
  if (reboot) return undefined
  return {
    policy: 'replay',
    deviceId: observation.deviceId,
    severity: policy.severity,
    summary: observation.seq === previous.seq ? `seq ${observation.seq} repeated` : `seq went back from ${previous.seq} to ${observation.seq}`,
    evidence: { seq: observation.seq, previousSeq: previous.seq, ts: observation.ts, previousTs: previous.ts },
  }
}
