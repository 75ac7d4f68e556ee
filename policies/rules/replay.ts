import type { Finding, PreviousTelemetry, TelemetryObservation } from '../finding.ts'
import type { PolicyOf } from '../schema.ts'
import { fnv1a } from '../../shared/fnv1a.ts'

/**
 * How far a rebooted device's first message may seem to be sent before
 * its previous message, or after its own arrival, on PlaceGuard's clock:
 * transit, and a clock synced to the second.
 */
export const REBOOT_CLOCK_SLACK_MS = 5_000

/**
 * replay: a `seq` repeated or going backwards. A device that rebooted
 * restarts at 0 or 1 (isReboot); a repeated seq never is a reboot —
 * unless it is a redelivery (see isRedelivery), which the engine sets
 * aside before any rule sees it. `lagMs` is the device's learned lag
 * (receive time − `ts`) before this message.
 */
export function replayRule (policy: PolicyOf<'replay'>, observation: TelemetryObservation, previous: PreviousTelemetry | undefined, lagMs?: number): Finding | undefined {
  if (!previous || observation.seq > previous.seq) return undefined
  if (isReboot(observation, previous, lagMs)) return undefined
  return {
    policy: 'replay',
    deviceId: observation.deviceId,
    severity: policy.severity,
    summary: observation.seq === previous.seq ? `seq ${observation.seq} repeated` : `seq went back from ${previous.seq} to ${observation.seq}`,
    evidence: { seq: observation.seq, previousSeq: previous.seq, ts: observation.ts, previousTs: previous.ts },
  }
}

/**
 * A seq back to 0 or 1 is a reboot if the message was sent after the
 * previous one and not in the future, on PlaceGuard's clock. Where it was
 * sent is read two ways, since a reboot may keep the device's clock or
 * set it right (one that ran ahead, synced again as it booted): its `ts`
 * plus its learned lag, or its `ts` as it stands. An old message sent
 * again fails both ways: it was sent before the previous one by the
 * clock it carries, and a clock that ran ahead then puts it ahead of its
 * arrival now. Without a learned lag, a later `ts` than the previous
 * message's is all there is to go on.
 */
export function isReboot (observation: TelemetryObservation, previous: PreviousTelemetry, lagMs: number | undefined): boolean {
  if (observation.seq >= previous.seq || observation.seq > 1) return false
  if (lagMs === undefined) return observation.ts > previous.ts
  const previousSentMs = previous.ts + lagMs
  const plausible = (sentMs: number): boolean =>
    sentMs >= previousSentMs - REBOOT_CLOCK_SLACK_MS && sentMs <= observation.receivedAtMs + REBOOT_CLOCK_SLACK_MS
  return plausible(observation.ts + lagMs) || plausible(observation.ts)
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

