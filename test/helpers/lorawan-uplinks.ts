/**
 * Network server events as ChirpStack v4 and The Things Stack v3 publish
 * them (field for field after ChirpStack's integration.proto JSON and The
 * Things Stack's ApplicationUp JSON, as in test/shared/lorawan.test.ts),
 * with the parts a test varies as parameters.
 */
import { lorawanUplinkTopic } from '../../shared/lorawan.ts'

export interface UplinkParts {
  devEui: string
  fCnt: number
  decoded?: Record<string, unknown>
  /** Gateways that heard it: id, RSSI, SNR (a 0 is left out, as protobuf's JSON mapping does). */
  gateways?: Array<{ id: string, rssi: number, snr: number }>
  time?: string
  fPort?: number
}

export const CHIRPSTACK_APP = '17c82e96-be03-4f38-aef3-f83d48582d97'

export function chirpstackTopic (integrationId: string, devEui: string, event: 'up' | 'join' | 'status' | 'log' = 'up'): string {
  return lorawanUplinkTopic(integrationId, `application/${CHIRPSTACK_APP}/device/${devEui}/event/${event}`)
}

export function ttsTopic (integrationId: string, deviceId: string, event: 'up' | 'join' = 'up'): string {
  return lorawanUplinkTopic(integrationId, `v3/housing-sensors@riverside-council/devices/${deviceId}/${event}`)
}

export function chirpstackUp (parts: UplinkParts): Record<string, unknown> {
  return {
    deduplicationId: '3ac7e3c4-4401-4b8d-9386-a5c902f9202d',
    time: parts.time ?? '2026-11-30T08:15:02.512345+00:00',
    deviceInfo: {
      tenantId: '52f14cd4-c6f1-4fbd-8f87-4025e1d49242', tenantName: 'Riverside Council', applicationId: CHIRPSTACK_APP,
      applicationName: 'flood-sensors', deviceProfileId: '14855bf7-d10d-4aee-b618-ebfcb64dc7ad', deviceProfileName: 'EU868 class A',
      deviceName: 'bridge-street-gauge', devEui: parts.devEui, deviceClassEnabled: 'CLASS_A', tags: { site: 'riverside' },
    },
    devAddr: '00189440', adr: true, dr: 5, ...(parts.fCnt ? { fCnt: parts.fCnt } : {}), fPort: parts.fPort ?? 2, confirmed: false, data: 'AQIDBA==',
    ...(parts.decoded ? { object: parts.decoded } : {}),
    rxInfo: (parts.gateways ?? [{ id: '0016c001f153a14c', rssi: -97, snr: 7.5 }]).map((gateway, i) => ({
      gatewayId: gateway.id, uplinkId: 4217106255 + i, nsTime: '2026-11-30T08:15:02.302Z', ...(gateway.rssi ? { rssi: gateway.rssi } : {}), ...(gateway.snr ? { snr: gateway.snr } : {}),
      channel: 2, location: {}, context: 'EFwMtA==', crcStatus: 'CRC_OK',
    })),
    txInfo: { frequency: 868500000, modulation: { lora: { bandwidth: 125000, spreadingFactor: 7, codeRate: 'CR_4_5' } } },
  }
}

export function chirpstackJoin (devEui: string, time = '2026-11-30T08:00:00.5Z'): Record<string, unknown> {
  return { deduplicationId: '9f1c', time, deviceInfo: { tenantId: 't', applicationId: CHIRPSTACK_APP, deviceName: 'gauge', devEui }, devAddr: '00189441' }
}

export function ttsUp (parts: UplinkParts & { deviceId?: string }): Record<string, unknown> {
  return {
    end_device_ids: {
      device_id: parts.deviceId ?? 'block-c-flat-12', application_ids: { application_id: 'housing-sensors' }, dev_eui: parts.devEui, join_eui: '0000000000000000', dev_addr: '260B1234',
    },
    correlation_ids: ['as:up:01HF7Z5VZ6K3', 'rpc:/ttn.lorawan.v3.AppAs/SimulateUplink:3d2c'],
    received_at: parts.time ?? '2026-11-30T08:15:03.041276391Z',
    uplink_message: {
      session_key_id: 'AYvB2w9l5h3hW0o8kQ==', f_port: parts.fPort ?? 1, ...(parts.fCnt ? { f_cnt: parts.fCnt } : {}), frm_payload: 'CQIBBA==',
      ...(parts.decoded ? { decoded_payload: parts.decoded } : {}),
      rx_metadata: (parts.gateways ?? [{ id: 'council-gw-3', rssi: -88, snr: 9.25 }]).map((gateway) => ({
        gateway_ids: { gateway_id: gateway.id, eui: 'B827EBFFFE61C2A0' }, time: '2026-11-30T08:15:02.981Z', timestamp: 2374102340,
        ...(gateway.rssi ? { rssi: gateway.rssi, channel_rssi: gateway.rssi } : {}), ...(gateway.snr ? { snr: gateway.snr } : {}), uplink_token: 'ChsKGQ==', received_at: '2026-11-30T08:15:02.99Z',
      })),
      settings: { data_rate: { lora: { bandwidth: 125000, spreading_factor: 9, coding_rate: '4/5' } }, frequency: '867100000', timestamp: 2374102340 },
      received_at: '2026-11-30T08:15:03.001Z', consumed_airtime: '0.185344s',
    },
  }
}

export const json = (value: unknown): Buffer => Buffer.from(JSON.stringify(value))
