/**
 * One received message (topic and payload, as a device or the broker sent
 * them) into what the collector stores and what detection hears. Pure:
 * the MQTT session (collector.ts) and the cluster's streams
 * (stream-spool.ts) both decode through here, so a message means the same
 * whichever way it came.
 */
import { z } from 'zod'
import { isDeviceKind } from '../shared/ids.ts'
import type { SecurityEvent } from '../shared/security-events.ts'
import { parseTelemetry } from '../shared/telemetry.ts'
import { LORAWAN_UPLINKS_PREFIX, type LorawanObservation, parseLorawanUplinkTopic } from '../shared/lorawan.ts'
import { SECURITY_EVENTS_PREFIX } from '../shared/topics.ts'
import { decodeLorawan, EMPTY_LORAWAN_REGISTRY, type LorawanOutcome, type LorawanRegistry } from './lorawan.ts'
import { securityEventPoint, telemetryPoint } from './points.ts'
import type { StoredPoint } from './stored-point.ts'

export const TELEMETRY_FILTER = 'places/+/+/+/telemetry'
const TELEMETRY_TOPIC = /^places\/([a-z0-9-]{1,64})\/([a-z]+)\/([a-z0-9-]{1,64})\/telemetry$/

const eventSchema = z.looseObject({ type: z.string(), at: z.string(), reason: z.string() })

export type Decoded =
  /** A valid reading: stored, and heard by detection. */
  | { kind: 'telemetry', point: StoredPoint }
  /** A security event from the broker: stored, and heard by detection. */
  | { kind: 'event', event: SecurityEvent, point: StoredPoint }
  /** Invalid telemetry: it becomes a `payload-invalid` security event, stored and heard. */
  | { kind: 'rejected', event: SecurityEvent, point: StoredPoint }
  /** A broker event that cannot be read: nothing to store; the caller says so. */
  | { kind: 'unreadable' }
  /**
   * A network server's event (collector/lorawan.ts): heard by detection as
   * an observation; `then` is the registered device's reading, or why it
   * is not one, handled like the kinds above.
   */
  | { kind: 'lorawan', observation: LorawanObservation, then?: LorawanOutcome }

/** `registry`: who each DevEUI belongs to, for integration uplinks (none registered without it). */
export function decodeMessage (topic: string, payload: Buffer, nowMs: number, registry: LorawanRegistry = EMPTY_LORAWAN_REGISTRY): Decoded {
  if (topic.startsWith(LORAWAN_UPLINKS_PREFIX)) {
    const uplink = parseLorawanUplinkTopic(topic)
    if (!uplink) {
      // The broker re-addresses only its networks' topics; anything else here is charged to the integration the topic names.
      const integrationId = topic.slice(LORAWAN_UPLINKS_PREFIX.length).split('/')[0] || undefined
      return rejected(nowMs, topic, integrationId, undefined, `topic ${topic} is not ${LORAWAN_UPLINKS_PREFIX}<integration>/<a network's uplink topic>`)
    }
    const decoded = decodeLorawan(uplink.integrationId, topic, uplink.topic, payload, nowMs, registry)
    return 'observation' in decoded ? { kind: 'lorawan', observation: decoded.observation, then: decoded.outcome } : decoded
  }
  if (topic.startsWith(SECURITY_EVENTS_PREFIX)) {
    const event = parseEvent(payload)
    return event ? { kind: 'event', event, point: securityEventPoint(event) } : { kind: 'unreadable' }
  }
  const match = TELEMETRY_TOPIC.exec(topic)
  const kind = match?.[2]
  if (!match || !kind || !isDeviceKind(kind)) return rejected(nowMs, topic, undefined, undefined, `topic ${topic} is not places/<site>/<kind>/<device>/telemetry`)
  const [, site, , deviceId] = match as unknown as [string, string, string, string]
  const parsed = parseTelemetry(kind, payload)
  if (!parsed.ok) return rejected(nowMs, topic, deviceId, { site, kind }, parsed.reason)
  return { kind: 'telemetry', point: telemetryPoint(kind, site, deviceId, parsed.telemetry) }
}

function rejected (nowMs: number, topic: string, deviceId: string | undefined, where: { site: string, kind: string } | undefined, reason: string): Decoded {
  const event: SecurityEvent = { type: 'payload-invalid', at: new Date(nowMs).toISOString(), reason: `invalid telemetry: ${reason}`, topic, ...(deviceId ? { deviceId } : {}), ...where }
  return { kind: 'rejected', event, point: securityEventPoint(event) }
}

function parseEvent (payload: Buffer): SecurityEvent | undefined {
  try {
    const result = eventSchema.safeParse(JSON.parse(payload.toString('utf8')))
    return result.success ? result.data as unknown as SecurityEvent : undefined
  } catch {
    return undefined
  }
}
