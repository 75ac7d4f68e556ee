/**
 * The JSON a network server's MQTT integration publishes, in full, as the
 * projects publish it (not just the fields PlaceGuard reads), so that the
 * broker's limits and the collector's parser meet real message sizes and
 * real field sets:
 *  - ChirpStack v4: `integration.proto` (UplinkEvent, JoinEvent) in
 *    protobuf's JSON mapping, lowerCamelCase; topic
 *    `application/<applicationId>/device/<devEui>/event/<up|join>`.
 *  - The Things Stack v3: `ApplicationUp` (uplink_message, join_accept),
 *    snake_case; topic `v3/<applicationId>@<tenantId>/devices/<deviceId>/<up|join>`.
 * Both leave out a field at its default (0, false, ""), as protobuf's JSON
 * mapping does: an uplink with frame counter 0 carries no `fCnt`/`f_cnt`.
 */
import type { LorawanNetwork } from '../shared/lorawan.ts'
import { hex, type RxSample } from './lorawan-radio.ts'
import type { Random } from './random.ts'

/** Who a device is at its network server. */
export interface LorawanIdentity {
  network: LorawanNetwork
  deviceId: string
  /** 16 hex, lower-case. */
  devEui: string
  joinEui: string
  tenantId: string
  tenantName: string
  applicationId: string
  applicationName: string
  deviceProfileId: string
  deviceProfileName: string
  tags: Record<string, string>
}

/** The session of the moment (OTAA: from the last join; ABP: fixed). */
export interface LorawanSession { devAddr: string, sessionKeyId: string }

export interface UplinkFrame {
  atMs: number
  fCnt: number
  fPort: number
  /** FRMPayload, decrypted: what `data`/`frm_payload` carry. */
  bytes: Buffer
  /** The payload codec's output: the kind's readings under PlaceGuard's names. */
  decoded: Record<string, number | string>
  rx: RxSample[]
  spreadingFactor: number
  frequency: number
}

export interface PublishedEvent { topic: string, payload: string }

const BANDWIDTH_HZ = 125_000
/** EU868: DR0 is SF12 … DR5 is SF7 at 125 kHz. */
const dataRateOf = (sf: number): number => 12 - sf

/** ChirpStack's and The Things Stack's timestamps carry nanoseconds; JavaScript's clock has milliseconds: the rest is drawn. */
function rfc3339Nanos (atMs: number, rng: Random, zone: 'Z' | '+00:00'): string {
  return new Date(atMs).toISOString().replace('Z', `${String(Math.floor(rng.next() * 1e6)).padStart(6, '0')}${zone}`)
}

function uuid (rng: Random): string {
  const h = hex(rng, 32)
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${'89ab'[Math.floor(rng.next() * 4)]}${h.slice(17, 20)}-${h.slice(20)}`
}

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'
/** The Things Stack's correlation ids end in a ULID: 48-bit time, 80 random bits, Crockford base32. */
function ulid (atMs: number, rng: Random): string {
  let time = ''
  for (let t = atMs, i = 0; i < 10; i++, t = Math.floor(t / 32)) time = CROCKFORD[t % 32]! + time
  let random = ''
  for (let i = 0; i < 16; i++) random += CROCKFORD[Math.floor(rng.next() * 32)]
  return time + random
}

const base64Of = (rng: Random, bytes: number): string => Buffer.from(hex(rng, bytes * 2), 'hex').toString('base64')
/** A gateway concentrator's microsecond counter, uint32. */
const concentratorTimestamp = (atMs: number): number => Math.floor(atMs * 1000) % 2 ** 32

/**
 * Time on air of a LoRa frame (Semtech AN1200.13): 8 preamble symbols,
 * explicit header, CRC on, coding rate 4/5, low data rate optimisation at
 * SF11/12 on 125 kHz; the PHYPayload is the FRMPayload plus 13 bytes
 * (MHDR, FHDR without options, FPort, MIC).
 */
export function airtimeSeconds (sf: number, frmPayloadBytes: number): number {
  const symbolS = 2 ** sf / BANDWIDTH_HZ
  const lowDataRate = sf >= 11 ? 1 : 0
  const payloadBytes = frmPayloadBytes + 13
  const payloadSymbols = 8 + Math.max(Math.ceil((8 * payloadBytes - 4 * sf + 28 + 16) / (4 * (sf - 2 * lowDataRate))) * 5, 0)
  return (8 + 4.25 + payloadSymbols) * symbolS
}

/** Leaves a field out at its default value, as protobuf's JSON mapping does. */
function omitDefault<T> (value: T): T | undefined {
  return value === 0 || value === false || value === '' ? undefined : value
}

export function lorawanTopic (identity: LorawanIdentity, event: 'up' | 'join'): string {
  return identity.network === 'chirpstack'
    ? `application/${identity.applicationId}/device/${identity.devEui}/event/${event}`
    : `v3/${identity.applicationId}@${identity.tenantId}/devices/${identity.deviceId}/${event}`
}

export function uplinkEvent (identity: LorawanIdentity, session: LorawanSession, frame: UplinkFrame, rng: Random): PublishedEvent {
  const payload = identity.network === 'chirpstack' ? chirpstackUp(identity, session, frame, rng) : ttsUp(identity, session, frame, rng)
  return { topic: lorawanTopic(identity, 'up'), payload: JSON.stringify(payload) }
}

export function joinEvent (identity: LorawanIdentity, session: LorawanSession, atMs: number, rng: Random): PublishedEvent {
  const payload = identity.network === 'chirpstack'
    ? { deduplicationId: uuid(rng), time: rfc3339Nanos(atMs, rng, '+00:00'), deviceInfo: chirpstackDeviceInfo(identity), devAddr: session.devAddr }
    : {
        end_device_ids: ttsIds(identity, session),
        correlation_ids: [`as:up:${ulid(atMs, rng)}`, `js:conn:${ulid(atMs, rng)}`, `ns:uplink:${ulid(atMs, rng)}`, `rpc:/ttn.lorawan.v3.NsAs/HandleUplink:${ulid(atMs, rng)}`],
        received_at: rfc3339Nanos(atMs + 40, rng, 'Z'),
        join_accept: { session_key_id: session.sessionKeyId, received_at: rfc3339Nanos(atMs, rng, 'Z') },
      }
  return { topic: lorawanTopic(identity, 'join'), payload: JSON.stringify(payload) }
}

function chirpstackDeviceInfo (identity: LorawanIdentity) {
  return {
    tenantId: identity.tenantId,
    tenantName: identity.tenantName,
    applicationId: identity.applicationId,
    applicationName: identity.applicationName,
    deviceProfileId: identity.deviceProfileId,
    deviceProfileName: identity.deviceProfileName,
    deviceName: identity.deviceId,
    devEui: identity.devEui,
    tags: identity.tags,
  }
}

function chirpstackUp (identity: LorawanIdentity, session: LorawanSession, frame: UplinkFrame, rng: Random) {
  return {
    deduplicationId: uuid(rng),
    time: rfc3339Nanos(frame.atMs, rng, '+00:00'),
    deviceInfo: chirpstackDeviceInfo(identity),
    devAddr: session.devAddr,
    adr: true,
    dr: omitDefault(dataRateOf(frame.spreadingFactor)),
    fCnt: omitDefault(frame.fCnt),
    fPort: frame.fPort,
    confirmed: omitDefault(false),
    data: frame.bytes.toString('base64'),
    object: frame.decoded,
    rxInfo: frame.rx.map((rx) => ({
      gatewayId: rx.gateway.gatewayId,
      uplinkId: Math.floor(rng.next() * 2 ** 32),
      gwTime: new Date(frame.atMs - 30).toISOString(),
      nsTime: rfc3339Nanos(frame.atMs - 5, rng, '+00:00'),
      rssi: omitDefault(rx.rssi),
      snr: omitDefault(rx.snr),
      channel: omitDefault(rx.channel),
      location: {},
      context: base64Of(rng, 4),
      metadata: { region_config_id: 'eu868', region_common_name: 'EU868' },
      crcStatus: 'CRC_OK',
    })),
    txInfo: {
      frequency: frame.frequency,
      modulation: { lora: { bandwidth: BANDWIDTH_HZ, spreadingFactor: frame.spreadingFactor, codeRate: 'CR_4_5' } },
    },
  }
}

function ttsIds (identity: LorawanIdentity, session: LorawanSession) {
  return {
    device_id: identity.deviceId,
    application_ids: { application_id: identity.applicationId },
    // The Things Stack writes EUIs and addresses in upper-case hex.
    dev_eui: identity.devEui.toUpperCase(),
    join_eui: identity.joinEui.toUpperCase(),
    dev_addr: session.devAddr.toUpperCase(),
  }
}

function ttsUp (identity: LorawanIdentity, session: LorawanSession, frame: UplinkFrame, rng: Random) {
  const timestamp = concentratorTimestamp(frame.atMs)
  const nsReceivedAt = rfc3339Nanos(frame.atMs, rng, 'Z')
  return {
    end_device_ids: ttsIds(identity, session),
    correlation_ids: [`as:up:${ulid(frame.atMs, rng)}`, `gs:conn:${ulid(frame.atMs, rng)}`, `gs:up:host:${ulid(frame.atMs, rng)}`, `gs:uplink:${ulid(frame.atMs, rng)}`, `ns:uplink:${ulid(frame.atMs, rng)}`, `rpc:/ttn.lorawan.v3.GsNs/HandleUplink:${ulid(frame.atMs, rng)}`, `rpc:/ttn.lorawan.v3.NsAs/HandleUplink:${ulid(frame.atMs, rng)}`],
    received_at: rfc3339Nanos(frame.atMs + 25, rng, 'Z'),
    uplink_message: {
      session_key_id: session.sessionKeyId,
      f_port: frame.fPort,
      f_cnt: omitDefault(frame.fCnt),
      frm_payload: frame.bytes.toString('base64'),
      decoded_payload: frame.decoded,
      rx_metadata: frame.rx.map((rx) => ({
        gateway_ids: { gateway_id: rx.gateway.gatewayId, eui: rx.gateway.eui.toUpperCase() },
        time: new Date(frame.atMs - 30).toISOString(),
        timestamp,
        rssi: omitDefault(rx.rssi),
        channel_rssi: omitDefault(rx.rssi),
        snr: omitDefault(rx.snr),
        channel_index: omitDefault(rx.channel),
        uplink_token: base64Of(rng, 32),
        received_at: rfc3339Nanos(frame.atMs - 10, rng, 'Z'),
      })),
      settings: {
        data_rate: { lora: { bandwidth: BANDWIDTH_HZ, spreading_factor: frame.spreadingFactor, coding_rate: '4/5' } },
        // A uint64 in protobuf's JSON mapping: a string.
        frequency: String(frame.frequency),
        timestamp,
        time: new Date(frame.atMs - 30).toISOString(),
      },
      received_at: nsReceivedAt,
      consumed_airtime: `${airtimeSeconds(frame.spreadingFactor, frame.bytes.length).toFixed(6)}s`,
      network_ids: { net_id: '000013', ns_id: 'EC656E0000000181', tenant_id: identity.tenantId, cluster_id: 'eu1', cluster_address: 'eu1.cloud.thethings.industries' },
    },
  }
}

/** A new ChirpStack/TTS-style identifier set for an application of one kind (stable for a seed). */
export function newUuid (rng: Random): string {
  return uuid(rng)
}
