/* eslint-disable @typescript-eslint/no-explicit-any -- response bodies are JSON whose shape the assertions check */
/**
 * Devices behind a LoRaWAN network server in the HTTP API, through
 * inject() over the in-memory source (test/helpers/api-source.ts): fed as
 * the collector service feeds it — the PKI's registry into the fleet view,
 * uplinks decoded by the collector's own decoder into telemetry and
 * observations. They are listed like every device, with identity
 * `lorawan`, their integration and DevEUI and the last uplink's gateways
 * and signal; the telemetry policies judge their readings as any device's.
 */
import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { decodeMessage, type Decoded } from '../../collector/decode.ts'
import { lorawanRegistryOf } from '../../collector/lorawan.ts'
import { buildApi } from '../../dashboards/api/app.ts'
import { createLogger } from '../../shared/logger.ts'
import { apiSourceForTest, type TestApiSource } from '../helpers/api-source.ts'
import { chirpstackTopic, chirpstackUp, json } from '../helpers/lorawan-uplinks.ts'

const VIEWER = 'viewer-token-0123456789abcdef'
const REGISTERED = [
  { deviceId: 'flood-lw-1', kind: 'flood', site: 'riverside', devEui: '0101010101010101', integrationId: 'chirpstack-council' },
  { deviceId: 'flood-lw-2', kind: 'flood', site: 'riverside', devEui: '0202020202020202', integrationId: 'chirpstack-council' },
  { deviceId: 'flood-lw-3', kind: 'flood', site: 'harbour', devEui: '0303030303030303', integrationId: 'chirpstack-council' },
] as const
const registry = lorawanRegistryOf(REGISTERED)
let api: TestApiSource
let app: FastifyInstance

/** An uplink as the collector service handles it: decoded, its observation and its reading fed in. */
function uplink (devEui: string, fCnt: number, decoded: Record<string, unknown>, receivedAtMs: number, gateways?: Array<{ id: string, rssi: number, snr: number }>): void {
  const result: Decoded = decodeMessage(chirpstackTopic('chirpstack-council', devEui), json(chirpstackUp({ devEui, fCnt, decoded, gateways, time: new Date(receivedAtMs - 300).toISOString() })), receivedAtMs, registry)
  if (result.kind !== 'lorawan') throw new Error(`not an observation: ${JSON.stringify(result)}`)
  api.lorawan(result.observation)
  if (result.then?.kind === 'telemetry') api.telemetry(result.then.point, receivedAtMs)
}

beforeAll(async () => {
  api = apiSourceForTest({ tokens: [{ token: VIEWER, role: 'viewer' }], devices: [{ id: 'flood-00001', kind: 'flood', site: 'riverside' }] })
  api.fleet.setLorawanDevices(REGISTERED)
  const now = Date.now()
  for (let n = 0; n < 5; n++) {
    uplink('0101010101010101', 100 + n, { level_cm: 40 + n, battery_v: 3.6 }, now - (5 - n) * 60_000,
      [{ id: 'gw-riverside-1', rssi: -101, snr: 4.5 }, { id: 'gw-riverside-2', rssi: -84, snr: 8.25 }])
  }
  // Readings a certificate device would be alerted for: a level off the scale; a network server clock an hour behind.
  uplink('0202020202020202', 7, { level_cm: 40, battery_v: 3.6 }, now - 60_000)
  uplink('0202020202020202', 8, { level_cm: 4000, battery_v: 3.6 }, now)
  // The same network server event again (the broker's QoS 1 resend), heard with other radio figures: a redelivery, not a replay.
  uplink('0202020202020202', 8, { level_cm: 4000, battery_v: 3.6 }, now, [{ id: 'gw-harbour-1', rssi: -120, snr: -3 }])
  const late = chirpstackUp({ devEui: '0101010101010101', fCnt: 105, decoded: { level_cm: 45, battery_v: 3.6 }, time: new Date(now - 3_600_000).toISOString() })
  const skewed = decodeMessage(chirpstackTopic('chirpstack-council', '0101010101010101'), json(late), now, registry)
  if (skewed.kind === 'lorawan' && skewed.then?.kind === 'telemetry') api.telemetry(skewed.then.point, now)
  app = await buildApi(api.source, { logger: createLogger({ level: 'silent' }) })
})
afterAll(async () => {
  await app?.close()
  await api?.close()
})

async function get (path: string): Promise<any> {
  const response = await app.inject({ method: 'GET', url: path, headers: { authorization: `Bearer ${VIEWER}` } })
  expect(response.statusCode, response.body).toBe(200)
  return JSON.parse(response.body)
}

describe('LoRaWAN devices in the API', () => {
  it('a heard device: identity, integration, DevEUI, the last uplink\'s gateways (best first) and signal, readings without the radio side', async () => {
    const device = await get('/api/devices/flood-lw-1')
    expect(device).toMatchObject({
      id: 'flood-lw-1', kind: 'flood', site: 'riverside', identity: 'lorawan', integration: 'chirpstack-council', devEui: '0101010101010101',
      health: expect.any(String), firmware: null, certificate: null,
      radio: { gateways: ['gw-riverside-2', 'gw-riverside-1'], rssi: -84, snr: 8.25, at: expect.any(String) },
    })
    expect(device.lastSeenAt).not.toBeNull()
    expect(device.telemetry.at(-1).readings).toEqual({ level_cm: 45, battery_v: 3.6 })
    expect(device.telemetry.map((sample: { seq: number }) => sample.seq).slice(0, 5)).toEqual([100, 101, 102, 103, 104])
  })

  it('a registered device never heard is listed never-seen, with no radio; a certificate device says so', async () => {
    expect(await get('/api/devices/flood-lw-3')).toMatchObject({ identity: 'lorawan', health: 'never-seen', radio: null, devEui: '0303030303030303' })
    expect(await get('/api/devices/flood-00001')).toMatchObject({ identity: 'certificate', integration: null, devEui: null, radio: null, certificate: { status: 'active' } })
  })

  it('the list filters by identity', async () => {
    const lorawan = await get('/api/devices?identity=lorawan')
    expect(lorawan.items.map((d: { id: string }) => d.id)).toEqual(['flood-lw-1', 'flood-lw-2', 'flood-lw-3'])
    expect(lorawan.items[0]).toMatchObject({ identity: 'lorawan', integration: 'chirpstack-council' })
    const certificate = await get('/api/devices?identity=certificate')
    expect(certificate.items.map((d: { id: string }) => d.id)).toEqual(['flood-00001'])
  })

  it('/metrics counts the network server events heard', async () => {
    const response = await app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${VIEWER}` } })
    expect(response.body).toMatch(/^placeguard_lorawan_events_total 8$/m)
  })

  it('value-implausible and clock-skew judge a LoRaWAN device\'s readings like any device\'s; the radio side is not a reading', async () => {
    const policiesOf = async (deviceId: string): Promise<string[]> => (await api.source.alerts.list({ deviceId })).map((alert) => alert.policy).sort()
    expect(await policiesOf('flood-lw-2')).toEqual(['value-implausible'])
    expect(await policiesOf('flood-lw-1')).toEqual(['clock-skew'])
  })
})
