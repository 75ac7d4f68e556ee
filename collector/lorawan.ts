/**
 * A network server's event, re-addressed by the broker to
 * `$SYS/placeguard/lorawan/<integrationId>/<network topic>`
 * (shared/lorawan.ts), into what the collector stores and detection hears.
 * Pure, like decode.ts, which calls it.
 *
 * Every event becomes a LorawanObservation (detection's lorawan-* policies
 * judge it). Only an uplink of a device registered to the integration
 * that published it is telemetry: an unknown DevEUI is nobody's reading,
 * and one registered to another integration is refused as spoofing
 * (STRIDE S) — neither is stored as a device's data.
 */
import { type DeviceKind } from '../shared/ids.ts'
import { type LorawanMessage, type LorawanObservation, type LorawanTopic, parseLorawanMessage } from '../shared/lorawan.ts'
import type { SecurityEvent } from '../shared/security-events.ts'
import { READING_FIELDS, type Telemetry, TELEMETRY_SCHEMAS } from '../shared/telemetry.ts'
import { securityEventPoint } from './points.ts'
import type { StoredPoint } from './stored-point.ts'

/** A device registered without a certificate, as the collector needs it. */
export interface LorawanDevice { deviceId: string, kind: DeviceKind, site: string, integrationId: string }

/** Who a DevEUI (lower-case) belongs to; filled by app/ from the PKI's registry. */
export interface LorawanRegistry {
  byDevEui: (devEui: string) => LorawanDevice | undefined
}

/** A registry over plain records; the records' DevEUIs in either case. */
export function lorawanRegistryOf (devices: Iterable<LorawanDevice & { devEui: string }>): LorawanRegistry {
  const byDevEui = new Map<string, LorawanDevice>()
  for (const { devEui, deviceId, kind, site, integrationId } of devices) byDevEui.set(devEui.toLowerCase(), { deviceId, kind, site, integrationId })
  return { byDevEui: (devEui) => byDevEui.get(devEui) }
}

export const EMPTY_LORAWAN_REGISTRY: LorawanRegistry = { byDevEui: () => undefined }

/** What one re-addressed event yields besides its observation: a reading, or the reason it is not one. */
export type LorawanOutcome =
  | { kind: 'telemetry', point: StoredPoint }
  | { kind: 'rejected', event: SecurityEvent, point: StoredPoint }

/** Where each network keeps what the collector reads, to name the field a refusal is about. */
const FIELD_NAMES = {
  chirpstack: { decoded: 'object', time: 'time', fCnt: 'fCnt' },
  tts: { decoded: 'uplink_message.decoded_payload', time: 'received_at', fCnt: 'uplink_message.f_cnt' },
} as const

/**
 * A reading's schema for a LoRaWAN device: the kind's, with `fw` optional.
 * LoRaWAN payloads are a few bytes and codecs rarely spend them on a
 * firmware version; when the decoded payload carries one it is checked and
 * stored like a certificate device's, so the firmware policies still
 * apply. `ts` and `seq` come from the network server, not the payload.
 */
const LORAWAN_SCHEMAS = {
  flood: TELEMETRY_SCHEMAS.flood.partial({ fw: true }),
  energy: TELEMETRY_SCHEMAS.energy.partial({ fw: true }),
  housing: TELEMETRY_SCHEMAS.housing.partial({ fw: true }),
} as const

export interface LorawanDecoded {
  observation: LorawanObservation
  outcome?: LorawanOutcome
}

/**
 * Decodes one re-addressed event. Returns the observation, with the
 * telemetry point (or its refusal) when the uplink is a registered
 * device's; or, when the envelope does not parse, the `payload-invalid`
 * event naming the field, charged to the integration.
 */
export function decodeLorawan (integrationId: string, topic: string, network: LorawanTopic, payload: Buffer, nowMs: number, registry: LorawanRegistry): LorawanDecoded | LorawanOutcome {
  const parsed = parseLorawanMessage(network, payload)
  if (!parsed.ok) return lorawanRejected(nowMs, topic, integrationId, undefined, `${parsed.field}: ${parsed.reason}`)
  const { message } = parsed
  const registered = registry.byDevEui(message.devEui)
  const mine = registered?.integrationId === integrationId ? registered : undefined
  const observation: LorawanObservation = {
    integrationId, network: network.network, message,
    ...(mine ? { device: { deviceId: mine.deviceId, kind: mine.kind, site: mine.site } } : {}),
    ...(registered && !mine ? { registeredTo: registered.integrationId } : {}),
  }
  if (!mine || message.event !== 'up') return { observation }
  // An uplink with no application payload (FPort 0 or absent: MAC commands only) is heard, but carries no reading.
  if (!message.fPort) return { observation }
  return { observation, outcome: uplinkTelemetry(mine, topic, message, nowMs) }
}

function uplinkTelemetry (device: LorawanDevice, topic: string, message: LorawanMessage, nowMs: number): LorawanOutcome {
  const names = FIELD_NAMES[message.network]
  const where = { site: device.site, kind: device.kind }
  if (!message.decoded) {
    return lorawanRejected(nowMs, topic, device.deviceId, where, `${names.decoded}: missing; the network server decoded no payload (give the device profile a payload codec)`)
  }
  // Only the kind's readings (and fw) are taken from the decoded payload: a
  // codec shared by several device models may add fields of its own, which
  // are left out rather than stored under names nobody chose.
  const candidate: Record<string, unknown> = { ts: message.receivedAtMs, seq: message.fCnt ?? 0 }
  for (const field of [...READING_FIELDS[device.kind], 'fw']) if (field in message.decoded) candidate[field] = message.decoded[field]
  const result = LORAWAN_SCHEMAS[device.kind].safeParse(candidate)
  if (!result.success) {
    const issue = result.error.issues[0]!
    const field = String(issue.path[0] ?? '')
    const name = field === 'ts' ? names.time : field === 'seq' ? names.fCnt : `${names.decoded}.${field}`
    return lorawanRejected(nowMs, topic, device.deviceId, where, `${name}: ${issue.message}`)
  }
  return { kind: 'telemetry', point: lorawanPoint(device, result.data as Telemetry, message) }
}

/**
 * The reading as a certificate device's (measurement = kind, tags site and
 * device, seq = FCnt, time = the network server's receive time), with the
 * radio side as fields: `rssi` and `snr` of the best gateway (highest
 * RSSI, then SNR), `gateways` (how many heard it) and `gateway` (the best
 * one's id). The gateway id is a field, not a tag: every tag value is a
 * series, and gateway ids come from the network server — a hostile or
 * misconfigured one could mint a series per uplink (STRIDE D).
 */
export function lorawanPoint (device: LorawanDevice, telemetry: Telemetry, message: LorawanMessage): StoredPoint {
  const { ts, ...fields } = telemetry
  const point: StoredPoint = { measurement: device.kind, tags: { site: device.site, device: device.deviceId }, fields: { ...fields, gateways: message.gateways.length }, timestampMs: ts }
  const best = bestGateway(message)
  if (best) Object.assign(point.fields, { rssi: best.rssi, snr: best.snr, gateway: best.gatewayId })
  return point
}

export function bestGateway (message: Pick<LorawanMessage, 'gateways'>): LorawanMessage['gateways'][number] | undefined {
  let best: LorawanMessage['gateways'][number] | undefined
  for (const gateway of message.gateways) {
    if (!best || gateway.rssi > best.rssi || (gateway.rssi === best.rssi && gateway.snr > best.snr)) best = gateway
  }
  return best
}

function lorawanRejected (nowMs: number, topic: string, deviceId: string, where: { site: string, kind: string } | undefined, reason: string): LorawanOutcome {
  const event: SecurityEvent = { type: 'payload-invalid', at: new Date(nowMs).toISOString(), reason: `invalid LoRaWAN event: ${reason}`, topic, deviceId, ...where }
  return { kind: 'rejected', event, point: securityEventPoint(event) }
}
