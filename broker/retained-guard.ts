/**
 * Retained messages from devices. aedes keeps every retained message in
 * broker memory (or Redis) and replays each one to every new matching
 * subscriber, so a device that retains big payloads on many topics of its
 * subtree grows the broker without bound (STRIDE: Denial of service). A
 * device keeps at most one: its last state, on its own telemetry topic, no
 * larger than DEVICE_RETAINED_MAX_BYTES. Any other retained PUBLISH (or will)
 * is still delivered, as a normal message, but not stored.
 *
 * [MQTT-3.3.1-5] asks a server to store a retained message; [MQTT-3.3.1-7]
 * lets it discard one at any time, which is what this amounts to.
 */
import type { Identity } from '../pki/index.ts'
import { telemetryTopic } from '../shared/topics.ts'

/** A telemetry reading is a few hundred bytes; the cap leaves room without letting replays grow. */
export const DEVICE_RETAINED_MAX_BYTES = 4 * 1024

export type RetainVerdict = { keep: true } | { keep: false, reason: string }

const KEEP: RetainVerdict = { keep: true }

/** Whether a retained PUBLISH from `identity` may be stored. Only device identities are limited. */
export function retainVerdict (identity: Identity, topic: string, payloadBytes: number): RetainVerdict {
  if (identity.role !== 'device') return KEEP
  const own = telemetryTopic(identity.site, identity.kind, identity.deviceId)
  // A zero-byte retained message deletes the one held on its topic
  // [MQTT-3.3.1-10]: let a device clear what it left before this rule existed.
  if (payloadBytes === 0) return KEEP
  if (topic !== own) return { keep: false, reason: 'retained message outside the device\'s own telemetry topic; delivered but not retained' }
  if (payloadBytes > DEVICE_RETAINED_MAX_BYTES) {
    return { keep: false, reason: `retained message of ${payloadBytes} bytes exceeds ${DEVICE_RETAINED_MAX_BYTES}; delivered but not retained` }
  }
  return KEEP
}
