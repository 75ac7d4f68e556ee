/**
 * shared/lorawan.ts against events shaped as the network servers publish
 * them (field for field after ChirpStack v4's integration.proto JSON and
 * The Things Stack v3's ApplicationUp JSON), and against what a hostile
 * integration might send instead.
 */
import { describe, expect, it } from 'vitest'
import { lorawanUplinkTopic, normalizeDevEui, parseLorawanMessage, parseLorawanTopic, parseLorawanUplinkTopic } from '../../shared/lorawan.ts'

const CHIRPSTACK_UP = {
  deduplicationId: '3ac7e3c4-4401-4b8d-9386-a5c902f9202d',
  time: '2026-11-30T08:15:02.512345+00:00',
  deviceInfo: {
    tenantId: '52f14cd4-c6f1-4fbd-8f87-4025e1d49242', tenantName: 'Riverside Council', applicationId: '17c82e96-be03-4f38-aef3-f83d48582d97',
    applicationName: 'flood-sensors', deviceProfileId: '14855bf7-d10d-4aee-b618-ebfcb64dc7ad', deviceProfileName: 'EU868 class A',
    deviceName: 'bridge-street-gauge', devEui: '0101010101010101', deviceClassEnabled: 'CLASS_A', tags: { site: 'riverside' },
  },
  devAddr: '00189440', adr: true, dr: 5, fCnt: 1877, fPort: 2, confirmed: false, data: 'AQIDBA==',
  object: { level_cm: 41.5, battery_v: 3.61 },
  rxInfo: [
    { gatewayId: '0016c001f153a14c', uplinkId: 4217106255, nsTime: '2026-11-30T08:15:02.302Z', rssi: -97, snr: 7.5, channel: 2, location: {}, context: 'EFwMtA==', crcStatus: 'CRC_OK' },
    // snr 0: protobuf's JSON mapping leaves the field out.
    { gatewayId: '0016c001f153a14d', uplinkId: 99, rssi: -112, channel: 2, context: 'EFwMtB==', crcStatus: 'CRC_OK' },
  ],
  txInfo: { frequency: 868500000, modulation: { lora: { bandwidth: 125000, spreadingFactor: 7, codeRate: 'CR_4_5' } } },
}

const TTS_UP = {
  end_device_ids: {
    device_id: 'block-c-flat-12', application_ids: { application_id: 'housing-sensors' }, dev_eui: '70B3D57ED005A1B2', join_eui: '0000000000000000', dev_addr: '260B1234',
  },
  correlation_ids: ['as:up:01HF7Z5VZ6K3', 'rpc:/ttn.lorawan.v3.AppAs/SimulateUplink:3d2c'],
  received_at: '2026-11-30T08:15:03.041276391Z',
  uplink_message: {
    session_key_id: 'AYvB2w9l5h3hW0o8kQ==', f_port: 1, f_cnt: 65535, frm_payload: 'CQIBBA==',
    decoded_payload: { temp_c: 19.5, humidity_pct: 61, co2_ppm: 812 },
    rx_metadata: [{ gateway_ids: { gateway_id: 'council-gw-3', eui: 'B827EBFFFE61C2A0' }, time: '2026-11-30T08:15:02.981Z', timestamp: 2374102340, rssi: -88, channel_rssi: -88, snr: 9.25, uplink_token: 'ChsKGQ==', received_at: '2026-11-30T08:15:02.99Z' }],
    settings: { data_rate: { lora: { bandwidth: 125000, spreading_factor: 9, coding_rate: '4/5' } }, frequency: '867100000', timestamp: 2374102340 },
    received_at: '2026-11-30T08:15:03.001Z', consumed_airtime: '0.185344s',
  },
}

const TTS_JOIN = {
  end_device_ids: TTS_UP.end_device_ids, received_at: '2026-11-30T08:00:00.5Z',
  join_accept: { session_key_id: 'AYvB2w9l5h3hW0o8kQ==', received_at: '2026-11-30T08:00:00.4Z' },
}

const parse = (topic: string, payload: unknown) => parseLorawanMessage(parseLorawanTopic(topic)!, Buffer.from(typeof payload === 'string' ? payload : JSON.stringify(payload)))
const CHIRPSTACK_TOPIC = 'application/17c82e96-be03-4f38-aef3-f83d48582d97/device/0101010101010101/event/up'
const TTS_TOPIC = 'v3/housing-sensors@riverside-council/devices/block-c-flat-12/up'

describe('LoRaWAN integration topics', () => {
  it('reads each network\'s topics, and only its own when asked for one', () => {
    expect(parseLorawanTopic(CHIRPSTACK_TOPIC)).toEqual({ network: 'chirpstack', applicationId: '17c82e96-be03-4f38-aef3-f83d48582d97', device: '0101010101010101', event: 'up' })
    expect(parseLorawanTopic('application/app/device/0A0B0C0D0E0F1011/event/join', 'chirpstack')).toMatchObject({ device: '0a0b0c0d0e0f1011', event: 'join' })
    expect(parseLorawanTopic(TTS_TOPIC)).toEqual({ network: 'tts', applicationId: 'housing-sensors', tenantId: 'riverside-council', device: 'block-c-flat-12', event: 'up' })
    expect(parseLorawanTopic(TTS_TOPIC, 'chirpstack')).toBeUndefined()
    expect(parseLorawanTopic(CHIRPSTACK_TOPIC, 'tts')).toBeUndefined()
  })

  it('refuses what is not an integration topic: wildcards, other events, short DevEUIs, device topics, extra levels', () => {
    for (const topic of [
      'application/+/device/0101010101010101/event/up', 'application/app/device/#', 'application/app/device/0101010101010101/event/down',
      'application/app/device/01010101/event/up', 'application/app/device/0101010101010101/event/up/extra', 'places/riverside/flood/f-1/telemetry',
      'v3/app/devices/dev/up', 'v3/app@t/devices/dev/down/push', 'v3/app@t/devices//up', '$SYS/placeguard/events/x', '',
    ]) expect(parseLorawanTopic(topic), topic).toBeUndefined()
  })

  it('re-addresses an integration\'s publish under its id and reads it back', () => {
    const topic = lorawanUplinkTopic('ttn-council', TTS_TOPIC)
    expect(topic).toBe(`$SYS/placeguard/lorawan/ttn-council/${TTS_TOPIC}`)
    expect(parseLorawanUplinkTopic(topic)).toEqual({ integrationId: 'ttn-council', topic: parseLorawanTopic(TTS_TOPIC) })
    expect(parseLorawanUplinkTopic(`$SYS/placeguard/lorawan/x/places/a/flood/b/telemetry`)).toBeUndefined()
    expect(parseLorawanUplinkTopic(`$SYS/placeguard/lorawan//${TTS_TOPIC}`)).toBeUndefined()
  })

  it('normalises DevEUIs and refuses what is not 16 hex digits', () => {
    expect(normalizeDevEui('70B3D57ED005A1B2')).toBe('70b3d57ed005a1b2')
    for (const bad of ['70B3D57ED005A1B', '70B3D57ED005A1B2F', '70B3-D57E-D005-A1B2', 'zzzzzzzzzzzzzzzz', '']) expect(normalizeDevEui(bad), bad).toBeUndefined()
  })
})

describe('LoRaWAN integration events', () => {
  it('reads a ChirpStack v4 uplink: DevEUI, counter, port, decoded object, every gateway with RSSI and SNR, the server\'s time', () => {
    expect(parse(CHIRPSTACK_TOPIC, CHIRPSTACK_UP)).toEqual({
      ok: true,
      message: {
        network: 'chirpstack', event: 'up', devEui: '0101010101010101', receivedAtMs: Date.parse('2026-11-30T08:15:02.512Z'), fCnt: 1877, fPort: 2,
        decoded: { level_cm: 41.5, battery_v: 3.61 },
        gateways: [{ gatewayId: '0016c001f153a14c', rssi: -97, snr: 7.5 }, { gatewayId: '0016c001f153a14d', rssi: -112, snr: 0 }],
      },
    })
  })

  it('reads a The Things Stack v3 uplink and join', () => {
    expect(parse(TTS_TOPIC, TTS_UP)).toEqual({
      ok: true,
      message: {
        network: 'tts', event: 'up', devEui: '70b3d57ed005a1b2', receivedAtMs: Date.parse('2026-11-30T08:15:03.041Z'), fCnt: 65535, fPort: 1,
        decoded: { temp_c: 19.5, humidity_pct: 61, co2_ppm: 812 }, gateways: [{ gatewayId: 'council-gw-3', rssi: -88, snr: 9.25 }],
      },
    })
    expect(parse(TTS_TOPIC.replace(/up$/, 'join'), TTS_JOIN)).toEqual({
      ok: true, message: { network: 'tts', event: 'join', devEui: '70b3d57ed005a1b2', receivedAtMs: Date.parse('2026-11-30T08:00:00.5Z'), gateways: [] },
    })
  })

  it('reads a ChirpStack join and a first uplink whose counter 0 the JSON mapping left out', () => {
    expect(parse(CHIRPSTACK_TOPIC.replace(/up$/, 'join'), { deduplicationId: 'x', time: '2026-11-30T08:00:00Z', deviceInfo: CHIRPSTACK_UP.deviceInfo, devAddr: '00189440' }))
      .toMatchObject({ ok: true, message: { event: 'join', devEui: '0101010101010101', gateways: [] } })
    const first: Partial<typeof CHIRPSTACK_UP> = { ...CHIRPSTACK_UP }
    delete first.fCnt
    expect(parse(CHIRPSTACK_TOPIC, first)).toMatchObject({ ok: true, message: { fCnt: 0 } })
  })

  it('refuses a hostile or broken event naming the field, never guessing', () => {
    const refusals: Array<[string, unknown, string]> = [
      [CHIRPSTACK_TOPIC, '{"time":', 'payload'],
      [CHIRPSTACK_TOPIC, { ...CHIRPSTACK_UP, deviceInfo: { ...CHIRPSTACK_UP.deviceInfo, devEui: '0101' } }, 'deviceInfo.devEui'],
      [CHIRPSTACK_TOPIC, { ...CHIRPSTACK_UP, time: 'yesterday' }, 'time'],
      [CHIRPSTACK_TOPIC, { ...CHIRPSTACK_UP, fCnt: -1 }, 'fCnt'],
      [CHIRPSTACK_TOPIC, { ...CHIRPSTACK_UP, fCnt: 2 ** 32 }, 'fCnt'],
      [CHIRPSTACK_TOPIC, { ...CHIRPSTACK_UP, rxInfo: [{ gatewayId: 'gw', rssi: 'loud' }] }, 'rxInfo.0.rssi'],
      [CHIRPSTACK_TOPIC, { ...CHIRPSTACK_UP, rxInfo: Array.from({ length: 65 }, () => CHIRPSTACK_UP.rxInfo[0]) }, 'rxInfo'],
      [CHIRPSTACK_TOPIC, { ...CHIRPSTACK_UP, object: [1, 2] }, 'object'],
      [TTS_TOPIC, { ...TTS_UP, end_device_ids: { device_id: 'x' } }, 'end_device_ids.dev_eui'],
      [TTS_TOPIC, { ...TTS_UP, uplink_message: { ...TTS_UP.uplink_message, f_cnt: 1.5 } }, 'uplink_message.f_cnt'],
      [TTS_TOPIC.replace(/up$/, 'join'), { end_device_ids: TTS_UP.end_device_ids, received_at: TTS_UP.received_at }, 'join_accept'],
      [TTS_TOPIC, JSON.stringify({ ...TTS_UP, pad: 'x'.repeat(20_000) }), 'payload'],
    ]
    for (const [topic, payload, field] of refusals) {
      const result = parse(topic, payload)
      expect(result.ok, field).toBe(false)
      if (!result.ok) expect(result.field, JSON.stringify(result)).toBe(field)
    }
  })
})
