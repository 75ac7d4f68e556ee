import { describe, expect, it } from 'vitest'
import { join } from 'node:path'
import { buildLorawanFleet, LORAWAN_POLICIES, loadScenario, planInjections, type LorawanFleet } from '../../agent-sim/index.ts'
import type { PublishedEvent } from '../../agent-sim/lorawan-events.ts'
import type { LorawanSimDevice } from '../../agent-sim/lorawan-device.ts'
import { Incidents, provisionPlan } from '../../agent-sim/lorawan-simulator.ts'
import { Random } from '../../agent-sim/random.ts'
import { assertScenarioFits, type Injection, scenarioSchema } from '../../agent-sim/scenario.ts'
import { decodeLorawan, lorawanRegistryOf } from '../../collector/index.ts'
import { type LorawanMessage, type LorawanNetwork, lorawanUplinkTopic, parseLorawanMessage, parseLorawanTopic } from '../../shared/lorawan.ts'
import type { StoredPoint } from '../../shared/stored-point.ts'
import { READING_FIELDS } from '../../shared/telemetry.ts'

const MIX = { flood: 1, energy: 1, housing: 1 }
const fleetOf = (network: LorawanNetwork, devices = 30, seed = 7): LorawanFleet => buildLorawanFleet({ network, devices, mix: MIX, sites: ['riverside', 'northgate', 'harbour'], seed })

/** Parses an event as the collector will: the topic of its network, then the payload; fails the test naming the field otherwise. */
function parse (network: LorawanNetwork, event: PublishedEvent): LorawanMessage {
  const topic = parseLorawanTopic(event.topic, network)
  expect(topic, event.topic).toBeDefined()
  const result = parseLorawanMessage(topic!, Buffer.from(event.payload))
  if (!result.ok) throw new Error(`${event.topic}: ${result.field}: ${result.reason}`)
  return result.message
}

/** Events read field by field, as a reader of the projects' documentation would. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the JSON's shape is what these tests check
type Json = Record<string, any>

let clock = Date.parse('2026-03-01T10:00:00Z')
const now = (): number => (clock += 10_000)

describe.each(['chirpstack', 'tts'] as const)('a simulated %s fleet', (network) => {
  it('publishes joins and uplinks the contract parses, with the kind\'s readings decoded and the device\'s own counter', () => {
    const fleet = fleetOf(network)
    for (const device of fleet.devices) {
      if (device.activation === 'otaa') {
        const join = parse(network, device.join(now()))
        expect(join).toMatchObject({ network, event: 'join', devEui: device.identity.devEui })
      }
      for (let i = 0; i < 5; i++) {
        const expected = device.fCnt
        const up = parse(network, device.uplink(now()))
        expect(up).toMatchObject({ network, event: 'up', devEui: device.identity.devEui, fCnt: expected })
        expect(up.receivedAtMs).toBeGreaterThanOrEqual(clock)
        expect(Object.keys(up.decoded!).sort()).toEqual([...READING_FIELDS[device.spec.kind], 'fw'].sort())
        for (const field of READING_FIELDS[device.spec.kind]) expect(typeof up.decoded![field]).toBe('number')
        expect(up.decoded!.fw).toBe(device.firmware)
      }
    }
  })

  it('is stored by the collector as each registered device\'s reading, with its counter, time and best gateway', () => {
    const fleet = fleetOf(network)
    const registry = lorawanRegistryOf(fleet.devices.map((d) => ({ deviceId: d.spec.deviceId, kind: d.spec.kind, site: d.spec.site, devEui: d.identity.devEui, integrationId: 'ns-1' })))
    for (const device of fleet.devices) {
      if (device.activation === 'otaa') device.join(now())
      for (let i = 0; i < 3; i++) {
        const fCnt = device.fCnt
        const event = device.uplink(now())
        const decoded = decodeLorawan('ns-1', lorawanUplinkTopic('ns-1', event.topic), parseLorawanTopic(event.topic)!, Buffer.from(event.payload), clock, registry)
        expect('observation' in decoded && decoded.outcome?.kind, `${device.spec.deviceId}: ${JSON.stringify(decoded)}`).toBe('telemetry')
        const point = (decoded as { outcome: { point: StoredPoint } }).outcome.point
        expect(point.tags).toMatchObject({ device: device.spec.deviceId, site: device.spec.site })
        expect(point.fields).toMatchObject({ seq: fCnt, fw: device.firmware })
        expect(point.fields.gateways).toBeGreaterThanOrEqual(1)
        expect(point.fields.rssi).toBeLessThan(-40)
        // The network server's receive time: ChirpStack's `time`, The Things Stack's `received_at` (the application server's, a few ms on).
        expect(point.timestampMs - clock).toBeGreaterThanOrEqual(0)
        expect(point.timestampMs - clock).toBeLessThan(100)
      }
    }
  })

  it('writes the whole event as the project does, with each network\'s ids', () => {
    const device = fleetOf(network).devices.find((d) => d.activation === 'otaa')!
    device.join(now())
    device.uplink(now()) // counter 0: left out of the JSON, as protobuf's JSON mapping does
    const event = device.uplink(now())
    const json = JSON.parse(event.payload) as Json
    if (network === 'chirpstack') {
      expect(event.topic).toBe(`application/${device.identity.applicationId}/device/${device.identity.devEui}/event/up`)
      expect(Object.keys(json)).toEqual(expect.arrayContaining(['deduplicationId', 'time', 'deviceInfo', 'devAddr', 'adr', 'fCnt', 'fPort', 'data', 'object', 'rxInfo', 'txInfo']))
      expect(Object.keys(json.deviceInfo).sort()).toEqual(['applicationId', 'applicationName', 'devEui', 'deviceName', 'deviceProfileId', 'deviceProfileName', 'tags', 'tenantId', 'tenantName'])
      expect(json.deduplicationId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
      expect(json.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}\+00:00$/)
      expect(json.devAddr).toMatch(/^[0-9a-f]{8}$/)
      expect(json.fCnt).toBe(1)
      expect(Buffer.from(json.data as string, 'base64').length).toBeGreaterThan(3)
      for (const rx of json.rxInfo) {
        expect(rx.gatewayId).toMatch(/^[0-9a-f]{16}$/)
        expect(Object.keys(rx)).toEqual(expect.arrayContaining(['gatewayId', 'uplinkId', 'rssi', 'snr', 'location', 'context', 'metadata', 'crcStatus']))
        expect(rx.crcStatus).toBe('CRC_OK')
      }
      expect(json.txInfo.modulation.lora).toMatchObject({ bandwidth: 125_000, codeRate: 'CR_4_5' })
      expect(json.txInfo.modulation.lora.spreadingFactor).toBeGreaterThanOrEqual(7)
    } else {
      expect(event.topic).toBe(`v3/${device.identity.applicationId}@council/devices/${device.spec.deviceId}/up`)
      expect(json.end_device_ids).toMatchObject({ device_id: device.spec.deviceId, application_ids: { application_id: device.identity.applicationId }, dev_eui: device.identity.devEui.toUpperCase() })
      expect(json.end_device_ids.dev_addr).toMatch(/^[0-9A-F]{8}$/)
      expect(json.correlation_ids.every((id: string) => /:[0-9A-HJKMNP-TV-Z]{26}$/.test(id))).toBe(true)
      expect(json.received_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/)
      const up = json.uplink_message
      expect(Object.keys(up)).toEqual(expect.arrayContaining(['session_key_id', 'f_port', 'f_cnt', 'frm_payload', 'decoded_payload', 'rx_metadata', 'settings', 'received_at', 'consumed_airtime']))
      expect(up.f_cnt).toBe(1)
      for (const rx of up.rx_metadata) {
        expect(rx.gateway_ids.gateway_id).toBe(`eui-${(rx.gateway_ids.eui as string).toLowerCase()}`)
        expect(rx.gateway_ids.eui).toMatch(/^[0-9A-F]{16}$/)
        expect(Object.keys(rx)).toEqual(expect.arrayContaining(['time', 'timestamp', 'rssi', 'channel_rssi', 'snr', 'uplink_token', 'received_at']))
      }
      expect(up.settings.data_rate.lora).toMatchObject({ bandwidth: 125_000, coding_rate: '4/5' })
      expect(up.settings.frequency).toMatch(/^86[78]\d{6}$/)
      expect(up.consumed_airtime).toMatch(/^0\.\d{6}s$/)
      const join = JSON.parse(device.join(now()).payload) as Json
      expect(Object.keys(join.join_accept).sort()).toEqual(['received_at', 'session_key_id'])
    }
  })

  it('counts each device\'s frames up by one; a 16-bit counter wraps to 0, a join restarts at 0, a 32-bit one never wraps', () => {
    const fleet = fleetOf(network, 120)
    const wrapping = fleet.devices.filter((d) => d.counterBits === 16)
    expect(wrapping.length).toBeGreaterThan(0)
    expect(wrapping.every((d) => d.activation === 'abp')).toBe(true)
    expect(fleet.devices.filter((d) => d.activation === 'otaa').length).toBeGreaterThan(fleet.devices.length / 2)
    for (const device of fleet.devices) {
      if (device.activation === 'otaa') device.join(now())
      const counters = Array.from({ length: 45 }, () => parse(network, device.uplink(now())).fCnt!)
      counters.slice(1).forEach((fCnt, i) => {
        const previous = counters[i]!
        if (device.counterBits === 16 && previous === 65_535) expect(fCnt).toBe(0)
        else expect(fCnt, device.spec.deviceId).toBe(previous + 1)
      })
      if (device.counterBits === 16) expect(counters, device.spec.deviceId).toContain(0) // it starts within 10 frames of its wrap
      if (device.activation === 'otaa') {
        expect(counters[0]).toBe(0)
        device.join(now())
        expect(parse(network, device.uplink(now())).fCnt).toBe(0)
      }
    }
  })

  it('has 2–3 gateways a site and hears each device through 1–3 of its site\'s, with RSSI and SNR in gateway range around a steady mean', () => {
    const fleet = fleetOf(network, 60)
    for (const gateways of fleet.gateways.values()) expect(gateways.length).toBeGreaterThanOrEqual(2)
    for (const gateways of fleet.gateways.values()) expect(gateways.length).toBeLessThanOrEqual(3)
    for (const device of fleet.devices) {
      const ofSite = new Set(fleet.gateways.get(device.spec.site)!.map((g) => g.gatewayId))
      const links = new Map<string, { rssi: number[], snr: number[] }>()
      for (let i = 0; i < 200; i++) {
        const up = parse(network, device.uplink(now()))
        expect(up.gateways.length).toBeGreaterThanOrEqual(1)
        expect(up.gateways.length).toBeLessThanOrEqual(3)
        for (const rx of up.gateways) {
          expect(ofSite.has(rx.gatewayId), rx.gatewayId).toBe(true)
          expect(rx.rssi).toBeGreaterThanOrEqual(-120)
          expect(rx.rssi).toBeLessThanOrEqual(-40)
          expect(rx.snr).toBeGreaterThanOrEqual(-20)
          expect(rx.snr).toBeLessThanOrEqual(12)
          const link = links.get(rx.gatewayId) ?? { rssi: [], snr: [] }
          link.rssi.push(rx.rssi)
          link.snr.push(rx.snr)
          links.set(rx.gatewayId, link)
        }
      }
      expect(links.size).toBeLessThanOrEqual(3)
      // A steady link: its spread is a few dB, not the whole range.
      for (const link of links.values()) expect(stdev(link.rssi)).toBeLessThan(4)
    }
    // Links differ: the fleet's mean RSSIs spread over tens of dB.
    const means = fleet.devices.map((d) => mean(Array.from({ length: 20 }, () => parse(network, d.uplink(now())).gateways[0]!.rssi)))
    expect(Math.max(...means) - Math.min(...means)).toBeGreaterThan(20)
  })

  it('enacts each LoRaWAN incident on the wire', () => {
    const fleet = fleetOf(network, 30)
    const published: Array<{ device: LorawanSimDevice, event: PublishedEvent }> = []
    const incidents = new Incidents(fleet, network, new Random(3), (device, event) => published.push({ device, event }), (_delay, work) => work())
    const [a, b, c, d, e, f] = fleet.devices.filter((x) => x.activation === 'otaa')
    const inject = (device: LorawanSimDevice, incident: Record<string, unknown>): void => {
      const injection = { ...scenarioSchema.parse({ name: 't', incidents: [{ select: { ids: [device.spec.deviceId] }, ...incident }] }).incidents[0]!, deviceId: device.spec.deviceId } as Injection
      const effect = incidents.effect(injection, device)
      expect(effect.ready?.() ?? true, `${String(incident.policy)} ready`).toBe(true)
      effect.apply()
    }
    for (const device of [a, b, c, d, e, f]) { device!.join(now()); for (let i = 0; i < 10; i++) device!.uplink(now()) }

    inject(a!, { policy: 'lorawan-fcnt-reset', mode: 'reset' })
    expect(parse(network, a!.uplink(now())).fCnt).toBe(0)
    inject(b!, { policy: 'lorawan-fcnt-reset', mode: 'replay', back: 4 })
    expect([parse(network, b!.uplink(now())).fCnt, parse(network, b!.uplink(now())).fCnt]).toEqual([6, 10])

    inject(c!, { policy: 'lorawan-join-flood', count: 12 })
    expect(published.filter((p) => p.device === c && p.event.topic.endsWith('/join')).map((p) => parse(network, p.event).event)).toHaveLength(12)

    const knownGateways = new Set([...fleet.gateways.values()].flat().map((g) => g.gatewayId))
    inject(d!, { policy: 'lorawan-gateway-shift', mode: 'unknown-gateway' })
    for (const rx of parse(network, d!.uplink(now())).gateways) expect(knownGateways.has(rx.gatewayId)).toBe(false)
    inject(e!, { policy: 'lorawan-gateway-shift', mode: 'other-site' })
    const elsewhere = new Set([...fleet.gateways].filter(([site]) => site !== e!.spec.site).flatMap(([, list]) => list.map((g) => g.gatewayId)))
    for (const rx of parse(network, e!.uplink(now())).gateways) expect(elsewhere.has(rx.gatewayId)).toBe(true)

    const sample = (device: LorawanSimDevice) => Array.from({ length: 300 }, () => parse(network, device.uplink(now())).gateways).flat()
    const before = sample(f!)
    inject(f!, { policy: 'lorawan-signal-shift' })
    const after = sample(f!)
    expect(mean(before.map((g) => g.rssi)) - mean(after.map((g) => g.rssi))).toBeGreaterThan(20)
    expect(mean(before.map((g) => g.snr)) - mean(after.map((g) => g.snr))).toBeGreaterThan(7)
    expect(new Set(after.map((g) => g.gatewayId))).toEqual(new Set(before.map((g) => g.gatewayId)))
  })

  it('registers every device to its integration but an unknown one: none, or another integration', () => {
    const fleet = fleetOf(network, 9)
    const [x, y] = fleet.devices
    const injection = (deviceId: string, mode: string) => ({ ...scenarioSchema.parse({ name: 't', incidents: [{ policy: 'lorawan-unknown-device', mode, select: { ids: [deviceId] } }] }).incidents[0]!, deviceId }) as Injection
    const ours = { integrationId: 'ns-1', network, site: 'riverside' }
    const peer = { ...ours, integrationId: 'ns-1-peer' }
    const plan = provisionPlan(fleet, [injection(x!.spec.deviceId, 'unregistered'), injection(y!.spec.deviceId, 'other-integration')], ours, peer)
    expect(plan.devices).toHaveLength(8)
    expect(plan.devices.find((r) => r.deviceId === x!.spec.deviceId)).toBeUndefined()
    expect(plan.devices.find((r) => r.deviceId === y!.spec.deviceId)).toMatchObject({ integrationId: 'ns-1-peer', devEui: y!.identity.devEui })
    expect(plan.devices.filter((r) => r.integrationId === 'ns-1')).toHaveLength(7)
    expect(plan.peers).toEqual([peer])
  })
})

describe('LoRaWAN scenarios', () => {
  it('refuses a LoRaWAN incident for certificate devices and a certificate incident for a LoRaWAN fleet, naming the incident', () => {
    const lorawan = scenarioSchema.parse({ name: 'l', incidents: [{ policy: 'rate-burst', select: { count: 1 } }, { policy: 'lorawan-join-flood', select: { count: 1 } }] })
    expect(() => assertScenarioFits(lorawan, 'devices')).toThrow(/incidents\.1\.policy: lorawan-join-flood needs a LoRaWAN fleet/)
    expect(() => assertScenarioFits(lorawan, 'lorawan')).not.toThrow()
    const devices = scenarioSchema.parse({ name: 'd', incidents: [{ policy: 'identity-clone', select: { count: 1 } }] })
    expect(() => assertScenarioFits(devices, 'lorawan')).toThrow(/incidents\.0\.policy: identity-clone is not something a device behind a network server can do/)
  })

  it('ships a scenario with every LoRaWAN policy that fits a fleet of 30', () => {
    const scenario = loadScenario(join(import.meta.dirname, '..', '..', 'agent-sim', 'scenarios', 'lorawan-mix.yaml'))
    assertScenarioFits(scenario, 'lorawan')
    for (const policy of LORAWAN_POLICIES) expect(scenario.incidents.map((i) => i.policy)).toContain(policy)
    expect(planInjections(scenario, fleetOf('tts', 30).devices.map((d) => d.spec), 1)).toHaveLength(scenario.incidents.length)
  })

  it('keeps DevEUIs with device ids across seeds, and apart across networks', () => {
    const one = fleetOf('chirpstack', 6, 1).devices.map((d) => [d.spec.deviceId, d.identity.devEui])
    const two = fleetOf('chirpstack', 6, 99).devices.map((d) => [d.spec.deviceId, d.identity.devEui])
    expect(one).toEqual(two)
    const tts = fleetOf('tts', 6, 1).devices.map((d) => d.identity.devEui)
    expect(tts.some((eui) => one.some(([, other]) => other === eui))).toBe(false)
    expect(new Set(one.map(([, eui]) => eui)).size).toBe(6)
  })
})

function mean (values: number[]): number {
  return values.reduce((a, b) => a + b, 0) / values.length
}

function stdev (values: number[]): number {
  const m = mean(values)
  return Math.sqrt(mean(values.map((v) => (v - m) ** 2)))
}
