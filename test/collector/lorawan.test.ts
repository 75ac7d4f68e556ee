/**
 * Integration uplinks, re-addressed by the broker, through the collector's
 * decoder (collector/decode.ts → collector/lorawan.ts): a registered
 * device's uplink is its telemetry, every event is an observation for
 * detection, an unknown or spoofed DevEUI is never a device's data, and
 * what does not parse is a payload-invalid event naming the field. The
 * same decoder serves the MQTT session (lorawan-collector.test.ts, over a
 * real broker) and the cluster's streams (StreamSpool, below).
 */
import { describe, expect, it } from 'vitest'
import { type Decoded, decodeMessage } from '../../collector/decode.ts'
import { lorawanRegistryOf } from '../../collector/lorawan.ts'
import { StreamSpool } from '../../collector/stream-spool.ts'
import { toLineProtocol } from '../../collector/stored-point.ts'
import { createLogger } from '../../shared/logger.ts'
import type { LorawanObservation } from '../../shared/lorawan.ts'
import { chirpstackJoin, chirpstackTopic, chirpstackUp, json, ttsTopic, ttsUp } from '../helpers/lorawan-uplinks.ts'

const NOW = Date.parse('2026-11-30T08:15:04Z')
const FLOOD_EUI = '0101010101010101'
const HOUSING_EUI = '70b3d57ed005a1b2'
const registry = lorawanRegistryOf([
  { deviceId: 'flood-lw-1', kind: 'flood', site: 'riverside', devEui: FLOOD_EUI, integrationId: 'chirpstack-council' },
  // Registered in upper case: DevEUIs are compared lower-case, as the parser gives them.
  { deviceId: 'housing-lw-1', kind: 'housing', site: 'old-town', devEui: HOUSING_EUI.toUpperCase(), integrationId: 'tts-council' },
])

const decode = (topic: string, payload: unknown): Decoded => decodeMessage(topic, typeof payload === 'string' ? Buffer.from(payload) : json(payload), NOW, registry)

function lorawan (decoded: Decoded): Extract<Decoded, { kind: 'lorawan' }> {
  expect(decoded.kind).toBe('lorawan')
  return decoded as Extract<Decoded, { kind: 'lorawan' }>
}

function rejectedReason (decoded: Decoded): { reason: string, deviceId: string | undefined } {
  const outcome = decoded.kind === 'lorawan' ? decoded.then : decoded
  expect(outcome?.kind).toBe('rejected')
  const event = (outcome as Extract<Decoded, { kind: 'rejected' }>).event
  expect(event.type).toBe('payload-invalid')
  return { reason: event.reason, deviceId: event.deviceId }
}

describe('a registered device\'s uplink is its telemetry', () => {
  it('ChirpStack: readings from `object`, seq = fCnt, ts = `time`, the best of the gateways', () => {
    const decoded = lorawan(decode(chirpstackTopic('chirpstack-council', FLOOD_EUI), chirpstackUp({
      devEui: FLOOD_EUI, fCnt: 1877, decoded: { level_cm: 41.5, battery_v: 3.61, alarm: false },
      // The second gateway hears it better; a third with SNR 0, which protobuf's JSON leaves out.
      gateways: [{ id: '0016c001f153a14c', rssi: -97, snr: 7.5 }, { id: '0016c001f153a14d', rssi: -71, snr: 10 }, { id: 'gw-far', rssi: -118, snr: 0 }],
    })))
    expect(decoded.observation).toMatchObject({ integrationId: 'chirpstack-council', network: 'chirpstack', device: { deviceId: 'flood-lw-1', kind: 'flood', site: 'riverside' } })
    expect(decoded.observation.registeredTo).toBeUndefined()
    expect(decoded.observation.message).toMatchObject({ event: 'up', devEui: FLOOD_EUI, fCnt: 1877 })
    expect(decoded.then).toEqual({
      kind: 'telemetry',
      point: {
        measurement: 'flood', tags: { site: 'riverside', device: 'flood-lw-1' }, timestampMs: Date.parse('2026-11-30T08:15:02.512Z'),
        // The codec's own extra (`alarm`) is not stored; no firmware in the payload, so none in the point.
        fields: { level_cm: 41.5, battery_v: 3.61, seq: 1877, gateways: 3, rssi: -71, snr: 10, gateway: '0016c001f153a14d' },
      },
    })
  })

  it('The Things Stack: readings from `decoded_payload`, seq = f_cnt, ts = `received_at`; fw kept when the codec gives one', () => {
    const decoded = lorawan(decode(ttsTopic('tts-council', 'block-c-flat-12'), ttsUp({
      devEui: HOUSING_EUI.toUpperCase(), fCnt: 65535, decoded: { temp_c: 19.5, humidity_pct: 61, co2_ppm: 812, fw: '1.9.2' },
    })))
    expect(decoded.observation).toMatchObject({ integrationId: 'tts-council', network: 'tts', device: { deviceId: 'housing-lw-1' } })
    expect(decoded.then).toEqual({
      kind: 'telemetry',
      point: {
        measurement: 'housing', tags: { site: 'old-town', device: 'housing-lw-1' }, timestampMs: Date.parse('2026-11-30T08:15:03.041Z'),
        fields: { temp_c: 19.5, humidity_pct: 61, co2_ppm: 812, fw: '1.9.2', seq: 65535, gateways: 1, rssi: -88, snr: 9.25, gateway: 'council-gw-3' },
      },
    })
  })

  it('is written to the store with the gateway as a field, not a tag (one series per device, whatever the gateway ids)', () => {
    const decoded = lorawan(decode(chirpstackTopic('chirpstack-council', FLOOD_EUI), chirpstackUp({ devEui: FLOOD_EUI, fCnt: 7, decoded: { level_cm: 40, battery_v: 3.6 } })))
    const line = toLineProtocol((decoded.then as Extract<Decoded, { kind: 'telemetry' }>).point)
    expect(line).toMatch(/^flood,device=flood-lw-1,site=riverside /)
    expect(line).toContain('gateway="0016c001f153a14c"')
    expect(line).toContain('gateways=1i')
    expect(line).toContain('seq=7i')
  })

  it('an uplink with no application payload (FPort 0) is heard, not a reading; a join is an observation only', () => {
    const mac = lorawan(decode(chirpstackTopic('chirpstack-council', FLOOD_EUI), { ...chirpstackUp({ devEui: FLOOD_EUI, fCnt: 9 }), fPort: undefined }))
    expect(mac.observation.device?.deviceId).toBe('flood-lw-1')
    expect(mac.then).toBeUndefined()
    const join = lorawan(decode(chirpstackTopic('chirpstack-council', FLOOD_EUI, 'join'), chirpstackJoin(FLOOD_EUI)))
    expect(join.observation).toMatchObject({ device: { deviceId: 'flood-lw-1' }, message: { event: 'join', devEui: FLOOD_EUI } })
    expect(join.then).toBeUndefined()
  })
})

describe('what is not a registered device\'s uplink is never its telemetry', () => {
  it('an unknown DevEUI: an observation without a device, nothing stored', () => {
    const decoded = lorawan(decode(chirpstackTopic('chirpstack-council', 'a0a0a0a0a0a0a0a0'), chirpstackUp({ devEui: 'A0A0A0A0A0A0A0A0', fCnt: 3, decoded: { level_cm: 1, battery_v: 3 } })))
    expect(decoded.observation.device).toBeUndefined()
    expect(decoded.observation.registeredTo).toBeUndefined()
    expect(decoded.observation.message.devEui).toBe('a0a0a0a0a0a0a0a0')
    expect(decoded.then).toBeUndefined()
  })

  it('a DevEUI registered to another integration (spoofing): an observation naming that integration, nothing stored', () => {
    const decoded = lorawan(decode(chirpstackTopic('rogue-network', FLOOD_EUI), chirpstackUp({ devEui: FLOOD_EUI, fCnt: 3, decoded: { level_cm: 900, battery_v: 3 } })))
    expect(decoded.observation).toMatchObject({ integrationId: 'rogue-network', registeredTo: 'chirpstack-council' })
    expect(decoded.observation.device).toBeUndefined()
    expect(decoded.then).toBeUndefined()
  })
})

describe('what does not parse is payload-invalid, naming the field', () => {
  const up = chirpstackTopic('chirpstack-council', FLOOD_EUI)
  const good = { devEui: FLOOD_EUI, fCnt: 5, decoded: { level_cm: 40, battery_v: 3.6 } }

  it.each([
    ['bad JSON', up, '{"time":', /payload: not JSON/],
    ['a DevEUI that is not 16 hex digits', up, chirpstackUp({ ...good, devEui: '01010101' }), /deviceInfo\.devEui: must be 16 hex digits/],
    ['a huge payload', up, JSON.stringify({ ...chirpstackUp(good), padding: 'x'.repeat(20_000) }), /payload: \d+ bytes exceed 16384/],
    ['an RSSI that is not a number', up, { ...chirpstackUp(good), rxInfo: [{ gatewayId: 'gw-1', rssi: 'NaN', snr: 1 }] }, /rxInfo\.0\.rssi/],
    ['more than 64 gateways', up, chirpstackUp({ ...good, gateways: Array.from({ length: 65 }, (_, i) => ({ id: `gw-${i}`, rssi: -90, snr: 5 })) }), /rxInfo: /],
    ['a receive time that is not a time', up, { ...chirpstackUp(good), time: 'yesterday' }, /time: must be an RFC 3339 time/],
    ['The Things Stack: a frame counter that is not a counter', ttsTopic('tts-council', 'block-c-flat-12'), ttsUp({ ...good, devEui: HOUSING_EUI, fCnt: -1 }), /uplink_message\.f_cnt/],
  ])('%s: charged to the integration', (_name, topic, payload, reason) => {
    const decoded = decode(topic, payload)
    expect(decoded.kind).toBe('rejected')
    const rejected = rejectedReason(decoded)
    expect(rejected.reason).toMatch(reason)
    expect(rejected.deviceId).toBe(topic.includes('tts') ? 'tts-council' : 'chirpstack-council')
  })

  it.each([
    ['a reading missing', { battery_v: 3.6 }, 'object.level_cm'],
    ['a reading that is not a number', { level_cm: '40', battery_v: 3.6 }, 'object.level_cm'],
    ['a firmware that is not a version', { level_cm: 40, battery_v: 3.6, fw: 'v2' }, 'object.fw'],
  ])('a registered device\'s decoded payload with %s: charged to the device, its observation still made', (_name, decodedPayload, field) => {
    const decoded = lorawan(decode(up, chirpstackUp({ ...good, decoded: decodedPayload })))
    expect(decoded.observation.device?.deviceId).toBe('flood-lw-1')
    const rejected = rejectedReason(decoded)
    expect(rejected.reason).toContain(`${field}:`)
    expect(rejected.deviceId).toBe('flood-lw-1')
  })

  it('an uplink with an application payload the network server did not decode names `decoded_payload`', () => {
    const rejected = rejectedReason(decode(ttsTopic('tts-council', 'block-c-flat-12'), ttsUp({ devEui: HOUSING_EUI, fCnt: 2 })))
    expect(rejected.reason).toContain('uplink_message.decoded_payload: missing')
    expect(rejected.deviceId).toBe('housing-lw-1')
  })

  it('a re-addressed topic that is no network\'s uplink topic is charged to the integration it names', () => {
    const rejected = rejectedReason(decode('$SYS/placeguard/lorawan/chirpstack-council/application/x/device/01/event/up', chirpstackUp(good)))
    expect(rejected.deviceId).toBe('chirpstack-council')
    expect(rejected.reason).toContain('is not $SYS/placeguard/lorawan/<integration>')
  })
})

describe('the cluster\'s streams decode integration uplinks the same way', () => {
  it('emits the observations and holds only the registered device\'s reading and the refusal for the store', async () => {
    const spool = new StreamSpool({ logger: createLogger({ level: 'silent' }), setAside: async () => {}, lorawanRegistry: registry })
    const observations: LorawanObservation[] = []
    spool.on('lorawan', (observation) => observations.push(observation))
    const telemetry: string[] = []
    spool.on('telemetry', (point) => telemetry.push(point.tags.device!))
    const up = chirpstackTopic('chirpstack-council', FLOOD_EUI)
    const taken = spool.take([
      { key: '0/1-0', topic: up, payload: json(chirpstackUp({ devEui: FLOOD_EUI, fCnt: 1, decoded: { level_cm: 40, battery_v: 3.6 } })) },
      { key: '0/2-0', topic: chirpstackTopic('rogue-network', FLOOD_EUI), payload: json(chirpstackUp({ devEui: FLOOD_EUI, fCnt: 2, decoded: { level_cm: 40, battery_v: 3.6 } })) },
      { key: '0/3-0', topic: up, payload: Buffer.from('not json') },
    ])
    expect(observations.map((o) => o.registeredTo ?? o.device?.deviceId)).toEqual(['flood-lw-1', 'chirpstack-council'])
    expect(telemetry).toEqual(['flood-lw-1'])
    const batch = spool.peek(10)!
    expect(batch.points.map((p) => `${p.measurement}/${p.tags.device}`)).toEqual(['flood/flood-lw-1', 'security_event/chirpstack-council'])
    expect(spool.metrics).toMatchObject({ received: 3, lorawanEvents: 2, telemetryStored: 1, rejected: 1 })
    spool.remove(batch.uptoId)
    await taken
  })
})
