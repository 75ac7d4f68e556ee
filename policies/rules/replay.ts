import type { Finding, PreviousTelemetry, TelemetryObservation } from '../finding.ts'
import type { PolicyOf } from '../schema.ts'
import { fnv1a } from '../../shared/fnv1a.ts'

/**
 * replay: a `seq` repeated or going backwards. A device that rebooted
 * restarts at 0 with a later `ts`, so a backwards seq with a later
 * timestamp near 0 is a reboot, not a replay; a repeated seq never is —
 * unless it is a redelivery (see isRedelivery), which the engine sets
 * aside before any rule sees it.
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

/** What the engine remembers of a message to recognise its redelivery: small, so it can keep a few per device. */
export interface MessageFingerprint {
  seq: number
  ts: number
  /** 32-bit FNV-1a of the firmware and readings. */
  content: number
  firstSeenMs: number
}

/** Messages remembered per device: more than a device has in flight between the broker and a collector. */
export const FINGERPRINTS_KEPT = 16
/**
 * …and, for a device that sends faster, every message heard in the last
 * RESEND_WINDOW_MS, up to FINGERPRINTS_MAX. A client cut off in a burst
 * (the broker disconnects a device flooding past its budget) sends again,
 * once reconnected, everything not yet acknowledged: in the demo's
 * 300-message flood, messages 51 back, which 16 fingerprints had
 * forgotten, so the flood raised a false replay besides its rate-burst.
 * The broker's budget (5/s, burst 50 by default) bounds what a window
 * holds for a device it throttles.
 */
export const RESEND_WINDOW_MS = 30_000
export const FINGERPRINTS_MAX = 512
/**
 * How long after first seeing a message its identical copy still counts as
 * the broker's redelivery. A QoS 1 message is resent when the collector's
 * session resumes (MQTT-3.3.1-1, MQTT-4.4.0-1) — seconds to minutes after a
 * crash or a lost PUBACK; the same bytes an hour later are a captured
 * message sent again (STRIDE S/T), and alert.
 */
export const REDELIVERY_HORIZON_MS = 15 * 60_000

export function fingerprintOf (observation: TelemetryObservation): MessageFingerprint {
  return { seq: observation.seq, ts: observation.ts, content: fnv1a(`${observation.fw}\u0000${JSON.stringify(observation.readings)}`), firstSeenMs: observation.receivedAtMs }
}

/**
 * A redelivery is the same message again — the same seq, ts and content as
 * one seen within the horizon — whether it was the last message or one of
 * a batch the broker resends in order (then an older seq follows newer
 * ones). It is neither news nor traffic: no rule sees it and no rate counts
 * it. The same seq with another ts or other readings, an old seq never
 * seen (or forgotten), or a copy past the horizon is not a redelivery.
 */
export function isRedelivery (observation: TelemetryObservation, seen: readonly MessageFingerprint[]): boolean {
  const mark = fingerprintOf(observation)
  return seen.some((m) => m.seq === mark.seq && m.ts === mark.ts && m.content === mark.content && observation.receivedAtMs - m.firstSeenMs <= REDELIVERY_HORIZON_MS)
}

