/**
 * A LoRaWAN network server's integration through the real broker (issue 16):
 * Debian's mosquitto clients publish recorded-shape ChirpStack v4 and The
 * Things Stack v3 uplinks with integration certificates; only the collector
 * role receives them, re-addressed under $SYS/placeguard/lorawan/<id>/, and
 * anything else an integration tries is refused and reported.
 */
import type { MqttClient } from 'mqtt'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { lorawanUplinkTopic } from '../../shared/lorawan.ts'
import { collectorFiles, connectClient, type RunningBroker, startBroker, waitFor } from '../helpers/broker.ts'
import { createTestFleet, type TestFleet } from '../helpers/fleet.ts'
import { mosquittoPub, mosquittoSub, type Subscriber } from '../helpers/mosquitto-clients.ts'

const CHIRPSTACK_TOPIC = 'application/17c82e96-be03-4f38-aef3-f83d48582d97/device/0101010101010101/event/up'
const CHIRPSTACK_UP = JSON.stringify({
  deduplicationId: '3ac7e3c4-4401-4b8d-9386-a5c902f9202d', time: '2026-11-30T08:15:02.512345+00:00',
  deviceInfo: { tenantId: '52f14cd4-c6f1-4fbd-8f87-4025e1d49242', applicationId: '17c82e96-be03-4f38-aef3-f83d48582d97', applicationName: 'flood-sensors', deviceName: 'bridge-street-gauge', devEui: '0101010101010101' },
  devAddr: '00189440', adr: true, dr: 5, fCnt: 1877, fPort: 2, confirmed: false, data: 'AQIDBA==',
  object: { level_cm: 41.5, battery_v: 3.61 },
  rxInfo: [{ gatewayId: '0016c001f153a14c', uplinkId: 4217106255, rssi: -97, snr: 7.5, channel: 2, context: 'EFwMtA==', crcStatus: 'CRC_OK' }],
})
const TTS_TOPIC = 'v3/housing-sensors@riverside-council/devices/block-c-flat-12/up'
const TTS_UP = JSON.stringify({
  end_device_ids: { device_id: 'block-c-flat-12', application_ids: { application_id: 'housing-sensors' }, dev_eui: '70B3D57ED005A1B2', dev_addr: '260B1234' },
  received_at: '2026-11-30T08:15:03.041276391Z',
  uplink_message: {
    f_port: 1, f_cnt: 65535, frm_payload: 'CQIBBA==', decoded_payload: { temp_c: 19.5, humidity_pct: 61, co2_ppm: 812 },
    rx_metadata: [{ gateway_ids: { gateway_id: 'council-gw-3', eui: 'B827EBFFFE61C2A0' }, rssi: -88, channel_rssi: -88, snr: 9.25 }],
  },
})
const DEVICE_TOPIC = 'places/riverside/flood/flood-1/telemetry'

/** The SUBACK's return codes (0x80: refused [MQTT-3.9.3]); mqtt.js rejects when any is refused, with the packet. */
async function subackCodes (client: MqttClient, filters: string[]): Promise<number[]> {
  try {
    return (await client.subscribeAsync(filters, { qos: 1 })).map((grant) => grant.qos)
  } catch (error) {
    return ((error as { packet: { granted: number[] } }).packet).granted
  }
}

let fleet: TestFleet
let running: RunningBroker
let collector: Subscriber

beforeAll(async () => {
  fleet = await createTestFleet(['flood-1', 'flood-2'].map((deviceId) => ({ deviceId, kind: 'flood', site: 'riverside' })))
  await fleet.pki.issueIntegration({ integrationId: 'cs-north', network: 'chirpstack', site: 'riverside' })
  await fleet.pki.issueIntegration({ integrationId: 'tts-east', network: 'tts', site: 'riverside' })
  // A device's budget strict enough that a short burst overflows it; integrations keep the defaults (200/s, burst 2,000).
  running = await startBroker(fleet, { publishRatePerSec: 1, publishBurst: 1, maxThrottleMs: 1_500 })
  collector = mosquittoSub(running.port, { cafile: fleet.paths.caCert, ...collectorCert() }, 'collector-lorawan', ['$SYS/placeguard/lorawan/#'])
  await collector.ready
})

afterAll(async () => {
  collector?.stop()
  await running?.close()
  fleet?.cleanup()
})

function collectorCert (): { cert: string, key: string } {
  return collectorFiles(fleet)
}

function integration (id: string): { cafile: string, cert: string, key: string } {
  return { cafile: fleet.paths.caCert, ...fleet.device(id) }
}

describe('an integration\'s uplinks', () => {
  it('reach the collector role re-addressed, ChirpStack and The Things Stack alike, and no device subscribed to # or application/#', async () => {
    const device: MqttClient = await connectClient(running.url, fleet, fleet.device('flood-1'), 'flood-1')
    const seenByDevice: string[] = []
    device.on('message', (topic) => seenByDevice.push(topic))
    expect(await subackCodes(device, ['#', 'application/#', 'v3/#', 'places/riverside/flood/flood-1/#'])).toEqual([128, 128, 128, 1])

    expect((await mosquittoPub(running.port, integration('cs-north'), 'cs-north', CHIRPSTACK_TOPIC, CHIRPSTACK_UP)).code).toBe(0)
    expect((await mosquittoPub(running.port, integration('tts-east'), 'tts-east', TTS_TOPIC, TTS_UP)).code).toBe(0)
    const chirpstackLine = `${lorawanUplinkTopic('cs-north', CHIRPSTACK_TOPIC)} ${CHIRPSTACK_UP}`
    const ttsLine = `${lorawanUplinkTopic('tts-east', TTS_TOPIC)} ${TTS_UP}`
    await waitFor(() => collector.lines.includes(chirpstackLine) && collector.lines.includes(ttsLine), 10_000, 'both uplinks at the collector')

    // The device's own message, published after the uplinks were delivered, is the only one it gets.
    await device.publishAsync(DEVICE_TOPIC, 'marker', { qos: 1 })
    await waitFor(() => seenByDevice.length > 0, 10_000, 'the device\'s own message')
    expect(seenByDevice).toEqual([DEVICE_TOPIC])
    device.end(true)
  })

  it('are delivered unretained: a retained uplink is not replayed to a later subscriber', async () => {
    const before = running.broker.integrationRetainStripped
    const client = await connectClient(running.url, fleet, fleet.device('cs-north'), 'cs-north')
    await client.publishAsync(CHIRPSTACK_TOPIC.replace('/up', '/status'), '{"time":"2026-11-30T08:15:02Z","deviceInfo":{"devEui":"0101010101010101"},"batteryLevel":90}', { qos: 1, retain: true })
    client.end(true)
    expect(running.broker.integrationRetainStripped).toBe(before + 1)
    const late = mosquittoSub(running.port, { cafile: fleet.paths.caCert, ...collectorCert() }, 'collector-late', ['$SYS/placeguard/lorawan/#'])
    try {
      await late.ready
      expect((await mosquittoPub(running.port, integration('cs-north'), 'cs-north', CHIRPSTACK_TOPIC, CHIRPSTACK_UP)).code).toBe(0)
      await waitFor(() => late.lines.length > 0, 10_000, 'the late subscriber\'s first message')
      expect(late.lines[0]).toBe(`${lorawanUplinkTopic('cs-north', CHIRPSTACK_TOPIC)} ${CHIRPSTACK_UP}`)
    } finally {
      late.stop()
    }
  })

  it('may come in a burst that a single device\'s budget refuses', async () => {
    const burst = 100
    const device = await connectClient(running.url, fleet, fleet.device('flood-2'), 'flood-2')
    const closed = new Promise<void>((resolve) => device.once('close', () => resolve()))
    for (let i = 0; i < burst; i++) device.publish('places/riverside/flood/flood-2/telemetry', String(i), { qos: 0 })
    await closed
    await running.waitForEvent((e) => e.type === 'rate-limited' && e.deviceId === 'flood-2' && e.details?.disconnected === true)

    const subscriber = await connectClient(running.url, fleet, collectorFiles(fleet), 'collector-burst')
    let received = 0
    subscriber.on('message', () => received++)
    await subscriber.subscribeAsync(lorawanUplinkTopic('tts-east', '#'), { qos: 0 })
    const client = await connectClient(running.url, fleet, fleet.device('tts-east'), 'tts-east')
    for (let i = 0; i < burst; i++) client.publish(TTS_TOPIC, TTS_UP, { qos: 0 })
    await waitFor(() => received === burst, 10_000, `all ${burst} uplinks`)
    expect(client.connected).toBe(true)
    expect(running.events.filter((e) => e.type === 'rate-limited' && e.deviceId === 'tts-east')).toEqual([])
    client.end(true)
    subscriber.end(true)
  })
})

describe('what an integration may not do', () => {
  const refusedPublishes: Array<[string, string, string]> = [
    ['a device\'s topic', 'cs-north', DEVICE_TOPIC],
    ['the other network\'s topic', 'cs-north', TTS_TOPIC],
    ['the other network\'s topic', 'tts-east', CHIRPSTACK_TOPIC],
    ['an event ChirpStack publishes but PlaceGuard does not read', 'cs-north', CHIRPSTACK_TOPIC.replace('/up', '/txack')],
    ['the re-addressed topic itself', 'cs-north', lorawanUplinkTopic('cs-north', CHIRPSTACK_TOPIC)],
    ['a security-event topic', 'tts-east', '$SYS/placeguard/events/connect'],
  ]
  for (const [what, id, topic] of refusedPublishes) {
    it(`refuses ${id} publishing on ${what}, closes it and reports acl-denied`, async () => {
      const marker = `${id}:${topic}`
      const result = await mosquittoPub(running.port, integration(id), id, topic, marker)
      expect(result.code).not.toBe(0)
      const event = await running.waitForEvent((e) => e.type === 'acl-denied' && e.deviceId === id && e.topic === topic)
      expect(event.details).toMatchObject({ role: 'integration' })
      expect(collector.lines.some((line) => line.endsWith(marker))).toBe(false)
    })
  }

  it('refuses its subscriptions, and reports them', async () => {
    const client = await connectClient(running.url, fleet, fleet.device('tts-east'), 'tts-east')
    expect(await subackCodes(client, ['v3/#', '$SYS/placeguard/lorawan/#'])).toEqual([128, 128])
    const event = await running.waitForEvent((e) => e.type === 'acl-denied' && e.deviceId === 'tts-east' && e.topic === 'v3/#')
    expect(event.details).toMatchObject({ role: 'integration', network: 'tts' })
    client.end(true)
  })

  it('refuses a client id other than its own', async () => {
    await expect(connectClient(running.url, fleet, fleet.device('cs-north'), 'flood-1')).rejects.toThrow()
    const event = await running.waitForEvent((e) => e.type === 'auth-failed' && e.deviceId === 'cs-north')
    expect(event.code).toBe('CLIENT_ID_MISMATCH')
  })
})
