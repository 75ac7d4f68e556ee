/**
 * What LoRaWAN network servers publish through their MQTT integrations, as
 * PlaceGuard reads it (issue 16): the topics of ChirpStack v4 and The
 * Things Stack v3, and their uplink and join events reduced to what the
 * broker, the collector and the simulator share. A message contract, so it
 * lives in shared/ like the telemetry and security-event ones.
 *
 * Shapes follow the projects' own documentation and code:
 *  - ChirpStack v4 (`chirpstack/api/proto/integration/integration.proto`,
 *    JSON with the protobuf field names in lowerCamelCase):
 *    `application/<applicationId>/device/<devEui>/event/<up|join|status|log|…>`;
 *    an `up` carries `deviceInfo.devEui`, `fCnt`, `fPort`, `object` (the
 *    decoded payload), `rxInfo[].gatewayId/rssi/snr` and `time`; a `join`
 *    carries `deviceInfo` and `devAddr`.
 *  - The Things Stack v3 (`api/messages.proto`, JSON with snake_case):
 *    `v3/<applicationId>@<tenantId>/devices/<deviceId>/<up|join|…>`; an
 *    `up` carries `end_device_ids.dev_eui`, `received_at`,
 *    `uplink_message.f_cnt`, `f_port`, `decoded_payload`,
 *    `rx_metadata[].gateway_ids.gateway_id/rssi/snr`; a `join` carries
 *    `join_accept`.
 * Everything from a network server is untrusted input: a field that does
 * not parse is refused with its name, never guessed at.
 */
import { z } from 'zod'
import { LORAWAN_NETWORKS, type LorawanNetwork } from './lorawan-networks.ts'

export { LORAWAN_NETWORKS, type LorawanNetwork }

/** Events PlaceGuard reads; an integration may publish these and nothing else. */
export const LORAWAN_EVENTS = { chirpstack: ['up', 'join', 'status', 'log'], tts: ['up', 'join'] } as const
export type LorawanEvent = 'up' | 'join' | 'status' | 'log'

/** A DevEUI: 16 hex digits, kept lower-case. */
export const DEV_EUI_PATTERN = /^[0-9a-f]{16}$/

/** Normalises a DevEUI as given by an operator or a network server (either case); undefined when it is not one. */
export function normalizeDevEui (value: string): string | undefined {
  const lower = value.toLowerCase()
  return DEV_EUI_PATTERN.test(lower) ? lower : undefined
}

/** Where a topic points, when it is one of a network's integration topics. */
export interface LorawanTopic {
  network: LorawanNetwork
  event: LorawanEvent
  applicationId: string
  /** The Things Stack's tenant (`<app>@<tenant>`); absent for ChirpStack. */
  tenantId?: string
  /** ChirpStack: the DevEUI (lower-case); The Things Stack: its device id. */
  device: string
}

// Topic levels of the network servers' own ids: no MQTT wildcards, no empty levels, bounded.
const LEVEL = '[A-Za-z0-9._~-]{1,128}'
const CHIRPSTACK_TOPIC = new RegExp(`^application/(${LEVEL})/device/([0-9a-fA-F]{16})/event/(up|join|status|log)$`)
const TTS_TOPIC = new RegExp(`^v3/(${LEVEL})@(${LEVEL})/devices/(${LEVEL})/(up|join)$`)

/** The integration topic `topic` is, of `network` (or of either); undefined otherwise. */
export function parseLorawanTopic (topic: string, network?: LorawanNetwork): LorawanTopic | undefined {
  if (network !== 'tts') {
    const m = CHIRPSTACK_TOPIC.exec(topic)
    if (m) return { network: 'chirpstack', applicationId: m[1]!, device: m[2]!.toLowerCase(), event: m[3] as LorawanEvent }
  }
  if (network !== 'chirpstack') {
    const m = TTS_TOPIC.exec(topic)
    if (m) return { network: 'tts', applicationId: m[1]!, tenantId: m[2]!, device: m[3]!, event: m[4] as LorawanEvent }
  }
  return undefined
}

/** One gateway that heard an uplink. */
export interface LorawanGateway { gatewayId: string, rssi: number, snr: number }

/** An event of a network server, reduced to what PlaceGuard judges. */
export interface LorawanMessage {
  network: LorawanNetwork
  event: LorawanEvent
  devEui: string
  /** The network server's receive time (ms epoch). */
  receivedAtMs: number
  /** Uplinks: the frame counter (FCntUp), the decoded payload, the gateways. */
  fCnt?: number
  fPort?: number
  decoded?: Record<string, unknown>
  gateways: LorawanGateway[]
}

export type LorawanParse = { ok: true, message: LorawanMessage } | { ok: false, field: string, reason: string }

/** Bounds on what one event may carry: far above any real one, so a hostile integration cannot make us allocate. */
export const MAX_LORAWAN_PAYLOAD_BYTES = 16_384
const MAX_GATEWAYS = 64

const finite = z.number().refine(Number.isFinite, 'must be a finite number')
const gatewayId = z.string().min(1).max(128)
const time = z.string().max(64).refine((value) => Number.isFinite(Date.parse(value)), 'must be an RFC 3339 time')
const decoded = z.record(z.string().max(64), z.unknown())
const fCnt = z.number().int().min(0).max(0xffff_ffff)
const fPort = z.number().int().min(0).max(255)

const chirpstackDeviceInfo = z.object({ devEui: z.string() })
const chirpstackUp = z.object({
  time,
  deviceInfo: chirpstackDeviceInfo,
  fCnt: fCnt.optional(),
  fPort: fPort.optional(),
  object: decoded.optional(),
  // Protobuf's JSON mapping leaves out fields at their default: an rssi or snr of 0 is absent.
  rxInfo: z.array(z.object({ gatewayId, rssi: finite.optional(), snr: finite.optional() })).max(MAX_GATEWAYS).optional(),
})
const chirpstackOther = z.object({ time, deviceInfo: chirpstackDeviceInfo })

const ttsIds = z.object({ dev_eui: z.string() })
const ttsUp = z.object({
  end_device_ids: ttsIds,
  received_at: time,
  uplink_message: z.object({
    f_cnt: fCnt.optional(),
    f_port: fPort.optional(),
    decoded_payload: decoded.optional(),
    rx_metadata: z.array(z.object({ gateway_ids: z.object({ gateway_id: gatewayId }), rssi: finite.optional(), snr: finite.optional() })).max(MAX_GATEWAYS).optional(),
  }),
})
const ttsJoin = z.object({ end_device_ids: ttsIds, received_at: time, join_accept: z.object({}) })

/** Parses an integration event published on `topic` (already parsed). Refusals name the field. */
export function parseLorawanMessage (topic: LorawanTopic, payload: Buffer): LorawanParse {
  if (payload.length > MAX_LORAWAN_PAYLOAD_BYTES) return { ok: false, field: 'payload', reason: `${payload.length} bytes exceed ${MAX_LORAWAN_PAYLOAD_BYTES}` }
  let json: unknown
  try {
    json = JSON.parse(payload.toString('utf8'))
  } catch (error) {
    return { ok: false, field: 'payload', reason: `not JSON: ${(error as Error).message}` }
  }
  const refuse = (error: z.ZodError): LorawanParse => {
    const issue = error.issues[0]!
    return { ok: false, field: issue.path.join('.') || 'payload', reason: issue.message }
  }
  const withEui = (raw: string, field: string, message: Omit<LorawanMessage, 'devEui'>): LorawanParse => {
    const devEui = normalizeDevEui(raw)
    return devEui ? { ok: true, message: { ...message, devEui } } : { ok: false, field, reason: 'must be 16 hex digits' }
  }
  if (topic.network === 'chirpstack') {
    if (topic.event === 'up') {
      const parsed = chirpstackUp.safeParse(json)
      if (!parsed.success) return refuse(parsed.error)
      const up = parsed.data
      return withEui(up.deviceInfo.devEui, 'deviceInfo.devEui', {
        network: 'chirpstack', event: 'up', receivedAtMs: Date.parse(up.time), fCnt: up.fCnt ?? 0, fPort: up.fPort, decoded: up.object,
        gateways: (up.rxInfo ?? []).map((rx) => ({ gatewayId: rx.gatewayId, rssi: rx.rssi ?? 0, snr: rx.snr ?? 0 })),
      })
    }
    const parsed = chirpstackOther.safeParse(json)
    if (!parsed.success) return refuse(parsed.error)
    return withEui(parsed.data.deviceInfo.devEui, 'deviceInfo.devEui', { network: 'chirpstack', event: topic.event, receivedAtMs: Date.parse(parsed.data.time), gateways: [] })
  }
  if (topic.event === 'up') {
    const parsed = ttsUp.safeParse(json)
    if (!parsed.success) return refuse(parsed.error)
    const up = parsed.data
    return withEui(up.end_device_ids.dev_eui, 'end_device_ids.dev_eui', {
      network: 'tts', event: 'up', receivedAtMs: Date.parse(up.received_at), fCnt: up.uplink_message.f_cnt ?? 0, fPort: up.uplink_message.f_port,
      decoded: up.uplink_message.decoded_payload,
      gateways: (up.uplink_message.rx_metadata ?? []).map((rx) => ({ gatewayId: rx.gateway_ids.gateway_id, rssi: rx.rssi ?? 0, snr: rx.snr ?? 0 })),
    })
  }
  const parsed = ttsJoin.safeParse(json)
  if (!parsed.success) return refuse(parsed.error)
  return withEui(parsed.data.end_device_ids.dev_eui, 'end_device_ids.dev_eui', { network: 'tts', event: 'join', receivedAtMs: Date.parse(parsed.data.received_at), gateways: [] })
}

/**
 * How an integration's publish reaches the collector: the broker accepts it
 * on the network's own topic and re-addresses it to
 * `$SYS/placeguard/lorawan/<integrationId>/<network topic>`, which only the
 * collector role may read. So which integration published an uplink is the
 * broker's word (from the certificate), never the payload's, and a
 * network's topics are never delivered to anyone else.
 */
export const LORAWAN_UPLINKS_PREFIX = '$SYS/placeguard/lorawan/'
export const LORAWAN_UPLINKS_FILTER = `${LORAWAN_UPLINKS_PREFIX}#`

export function lorawanUplinkTopic (integrationId: string, topic: string): string {
  return `${LORAWAN_UPLINKS_PREFIX}${integrationId}/${topic}`
}

/** The integration and the network topic of a re-addressed publish; undefined when it is not one. */
export function parseLorawanUplinkTopic (topic: string): { integrationId: string, topic: LorawanTopic } | undefined {
  if (!topic.startsWith(LORAWAN_UPLINKS_PREFIX)) return undefined
  const rest = topic.slice(LORAWAN_UPLINKS_PREFIX.length)
  const slash = rest.indexOf('/')
  if (slash <= 0) return undefined
  const parsed = parseLorawanTopic(rest.slice(slash + 1))
  return parsed && { integrationId: rest.slice(0, slash), topic: parsed }
}

/**
 * What detection is told of one integration event (collector → detection):
 * the message, who published it, and the device it is for when the DevEUI
 * is registered to that integration. `registeredTo` names another
 * integration when the DevEUI is registered to it instead (spoofing, or a
 * device moved without being re-registered).
 */
export interface LorawanObservation {
  integrationId: string
  network: LorawanNetwork
  device?: { deviceId: string, kind: string, site: string }
  registeredTo?: string
  message: LorawanMessage
}

/**
 * Fields a LoRaWAN device's telemetry point carries beside its readings:
 * the radio side of the uplink (best gateway's RSSI and SNR, how many
 * gateways heard it, the best one's id). They describe the path, not the
 * place, so detection and the fleet's reading ring leave them out of the
 * readings.
 */
export const LORAWAN_RADIO_FIELDS = ['rssi', 'snr', 'gateways', 'gateway'] as const
