/**
 * `sim --network` on the wire: the integration's one connection, every
 * event as an independent subscriber (mosquitto_sub) receives it, and each
 * incident visible there and in the ground truth.
 *
 * The first suite runs against mosquitto (no topic rules: what is tested
 * is the simulator's output), the second through PlaceGuard's broker.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildLorawanFleet, loadScenario, runLorawanSimulation, type TruthRecord } from '../../agent-sim/index.ts'
import { type LorawanMessage, type LorawanNetwork, LORAWAN_UPLINKS_FILTER, lorawanUplinkTopic, parseLorawanMessage, parseLorawanTopic, parseLorawanUplinkTopic } from '../../shared/lorawan.ts'
import { type BrokerProcess, freePort, startMosquitto } from '../../bench/lib/brokers.ts'
import { startBroker, type RunningBroker, waitFor } from '../helpers/broker.ts'
import { createTestFleet, type TestFleet } from '../helpers/fleet.ts'
import { mosquittoSub } from '../helpers/mosquitto-clients.ts'

const SITES = ['riverside', 'northgate', 'harbour']
const OPTIONS = { devices: 30, mix: { flood: 1, energy: 1, housing: 1 }, sites: SITES, seed: 5, intervalMs: 200 }

/** The scenario's devices, picked among the OTAA ones (their counters start at 0 and move fast enough for a short run). */
function scenarioFor (network: LorawanNetwork, dir: string): { file: string, ids: string[] } {
  const otaa = buildLorawanFleet({ network, ...OPTIONS }).devices.filter((d) => d.activation === 'otaa').map((d) => d.spec.deviceId)
  const incidents = [
    "policy: lorawan-unknown-device, mode: unregistered, at: 1s",
    "policy: lorawan-unknown-device, mode: other-integration, at: 1s",
    "policy: lorawan-fcnt-reset, mode: reset, at: 1s",
    "policy: lorawan-fcnt-reset, mode: replay, back: 2, at: 1s",
    "policy: lorawan-join-flood, count: 10, duration: 1s, at: 1s",
    "policy: lorawan-gateway-shift, mode: unknown-gateway, at: 1s",
    "policy: lorawan-gateway-shift, mode: other-site, at: 1s",
    "policy: lorawan-signal-shift, at: 1s",
    "policy: device-silent, at: 1s",
    "policy: firmware-downgrade, fw: 0.1.0, at: 1s",
  ]
  const ids = otaa.slice(0, incidents.length)
  const file = join(dir, `${network}-wire.yaml`)
  writeFileSync(file, ['name: wire check', 'incidents:', ...incidents.map((incident, i) => `  - { ${incident}, select: { ids: [${ids[i]}] } }`)].join('\n'))
  return { file, ids }
}

interface Heard { topic: string, message: LorawanMessage }

function parseLine (line: string, network: LorawanNetwork): Heard {
  const space = line.indexOf(' ')
  const topic = parseLorawanTopic(line.slice(0, space), network)
  expect(topic, line.slice(0, space)).toBeDefined()
  const parsed = parseLorawanMessage(topic!, Buffer.from(line.slice(space + 1)))
  if (!parsed.ok) throw new Error(`${line.slice(0, space)}: ${parsed.field}: ${parsed.reason}`)
  return { topic: line.slice(0, space), message: parsed.message }
}

/** Checks that each incident of scenarioFor shows on the wire, and in the ground truth. */
function expectIncidentsOnTheWire (heard: Heard[], truthFile: string, ids: string[], network: LorawanNetwork, integrationId: string): void {
  const fleet = buildLorawanFleet({ network, ...OPTIONS })
  const devEui = new Map(fleet.devices.map((d) => [d.spec.deviceId, d.identity.devEui]))
  const of = (id: string) => heard.filter((h) => h.message.devEui === devEui.get(id))
  const truth = readFileSync(truthFile, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as TruthRecord)
  const startOf = (id: string) => Date.parse(truth.find((t) => t.deviceId === id)!.startedAt)
  expect(truth.map((t) => `${t.deviceId} ${t.policy}`).sort()).toEqual(ids.map((id, i) => `${id} ${['lorawan-unknown-device', 'lorawan-unknown-device', 'lorawan-fcnt-reset', 'lorawan-fcnt-reset', 'lorawan-join-flood', 'lorawan-gateway-shift', 'lorawan-gateway-shift', 'lorawan-signal-shift', 'device-silent', 'firmware-downgrade'][i]}`).sort())
  for (const record of truth) expect(record).toMatchObject({ devEui: devEui.get(record.deviceId), integrationId })

  const [unregistered, otherIntegration, reset, replay, flood, newGateway, otherSite, signal, silent, firmware] = ids as [string, string, string, string, string, string, string, string, string, string]
  // Absent until their moment, then a join and uplinks.
  for (const id of [unregistered, otherIntegration]) {
    expect(of(id).length).toBeGreaterThan(2)
    expect(Math.min(...of(id).map((h) => h.message.receivedAtMs))).toBeGreaterThanOrEqual(startOf(id))
    expect(of(id)[0]!.message.event).toBe('join')
  }
  // The counter goes back with no join in between.
  for (const id of [reset, replay]) {
    const events = of(id).map((h) => h.message)
    const back = events.findIndex((m, i) => m.event === 'up' && i > 0 && events[i - 1]!.event === 'up' && m.fCnt! <= events[i - 1]!.fCnt!)
    expect(back, `${id}: a counter going back`).toBeGreaterThan(0)
  }
  expect(of(flood).filter((h) => h.message.event === 'join').length).toBeGreaterThanOrEqual(11)
  const known = new Set([...fleet.gateways.values()].flat().map((g) => g.gatewayId))
  const after = (id: string) => of(id).filter((h) => h.message.event === 'up' && h.message.receivedAtMs > startOf(id)).map((h) => h.message)
  const before = (id: string) => of(id).filter((h) => h.message.event === 'up' && h.message.receivedAtMs < startOf(id)).map((h) => h.message)
  expect(after(newGateway).length).toBeGreaterThan(0)
  for (const m of after(newGateway)) for (const g of m.gateways) expect(known.has(g.gatewayId)).toBe(false)
  const site = fleet.devices.find((d) => d.spec.deviceId === otherSite)!.spec.site
  const own = new Set(fleet.gateways.get(site)!.map((g) => g.gatewayId))
  for (const m of after(otherSite)) for (const g of m.gateways) expect(known.has(g.gatewayId) && !own.has(g.gatewayId)).toBe(true)
  const meanRssi = (list: LorawanMessage[]) => list.flatMap((m) => m.gateways.map((g) => g.rssi)).reduce((a, b, _, all) => a + b / all.length, 0)
  expect(meanRssi(before(signal)) - meanRssi(after(signal))).toBeGreaterThan(15)
  // Silence starts at its moment, between two uplinks; the one sent just before may carry a network server's
  // later time (TTS stamps received_at 25 ms after the frame), so a margin of one such stamp, well under an interval.
  expect(after(silent).filter((m) => m.receivedAtMs > startOf(silent) + 50)).toHaveLength(0)
  expect(after(firmware).map((m) => m.decoded!.fw)).toContain('0.1.0')
}

/**
 * The clean devices' counters, in the order published: +1 each uplink, 0
 * after each join (and rejoins happen), 65535 → 0 for a 16-bit counter,
 * never otherwise back: what lorawan-fcnt-reset must stay quiet on.
 */
function expectCleanCounters (heard: Heard[], network: LorawanNetwork, injected: string[]): void {
  const fleet = buildLorawanFleet({ network, ...OPTIONS })
  let rejoins = 0
  let wraps = 0
  for (const device of fleet.devices.filter((d) => !injected.includes(d.spec.deviceId))) {
    const events = heard.filter((h) => h.message.devEui === device.identity.devEui).map((h) => h.message)
    expect(events.length, device.spec.deviceId).toBeGreaterThan(5)
    let expected: number | undefined
    for (const m of events) {
      if (m.event === 'join') {
        if (expected !== undefined) rejoins++
        expected = 0
        continue
      }
      if (expected !== undefined) expect(m.fCnt, device.spec.deviceId).toBe(expected)
      if (m.fCnt === 65_535) wraps++
      expected = device.counterBits === 16 ? (m.fCnt! + 1) % 65_536 : m.fCnt! + 1
    }
  }
  expect(rejoins).toBeGreaterThan(0)
  expect(wraps).toBeGreaterThan(0)
}

describe('placeguard sim --network, through mosquitto (the integration certificate, no topic rules)', () => {
  let fleet: TestFleet
  let mosquitto: BrokerProcess
  beforeAll(async () => {
    fleet = await createTestFleet()
    mosquitto = await startMosquitto(fleet.paths, fleet.dataDir, await freePort())
  })
  afterAll(async () => {
    await mosquitto?.stop()
    fleet?.cleanup()
  })

  it.each(['chirpstack', 'tts'] as const)('%s: every event parses, counts match, and each incident is on the wire and in the ground truth', async (network) => {
    const { file, ids } = scenarioFor(network, fleet.dataDir)
    const truthFile = join(fleet.dataDir, `${network}-truth.jsonl`)
    const sub = mosquittoSub(mosquitto.port, { cafile: fleet.paths.caCert, cert: fleet.paths.collectorCert, key: fleet.paths.collectorKey }, `watch-${network}`, [network === 'chirpstack' ? 'application/#' : 'v3/#'])
    try {
      await sub.ready
      const summary = await runLorawanSimulation({
        dataDir: fleet.dataDir, brokerUrl: `mqtts://127.0.0.1:${mosquitto.port}`, network, ...OPTIONS, durationMs: 4_000,
        scenario: loadScenario(file), truthFile, rejoinChance: 0.03,
      })
      // The fleet PKI issues integration certificates now (issue 16), so the stand-in is not needed even for mosquitto.
      expect(summary).toMatchObject({ network, integrationId: `sim-${network}`, devices: 30, failed: 0, injected: 10, registered: 29 })
      expect(summary.sent).toBe(summary.acked)
      expect(summary.sent).toBe(summary.uplinks + summary.joins)
      expect(summary.uplinks).toBeGreaterThan(30 * 10)
      await waitFor(() => sub.lines.length >= summary.acked, 5_000, 'the subscriber to catch up')
      expect(sub.lines).toHaveLength(summary.acked)
      const heard = sub.lines.map((line) => parseLine(line, network))
      expect(heard.filter((h) => h.message.event === 'join')).toHaveLength(summary.joins)
      expectIncidentsOnTheWire(heard, truthFile, ids, network, `sim-${network}`)
      expectCleanCounters(heard, network, ids)
    } finally {
      sub.stop()
    }
  })
})


describe('placeguard sim --network, through PlaceGuard\'s broker (an integration certificate)', () => {
  let fleet: TestFleet
  let broker: RunningBroker
  beforeAll(async () => {
    fleet = await createTestFleet()
    broker = await startBroker(fleet)
  })
  afterAll(async () => {
    await broker?.close()
    fleet?.cleanup()
  })

  it.each(['chirpstack', 'tts'] as const)('%s: the broker takes every event and hands it to the collector re-addressed from the integration', async (network) => {
    const { file, ids } = scenarioFor(network, fleet.dataDir)
    const truthFile = join(fleet.dataDir, `${network}-truth.jsonl`)
    const integrationId = `ns-${network}`
    const sub = mosquittoSub(broker.port, { cafile: fleet.paths.caCert, cert: fleet.paths.collectorCert, key: fleet.paths.collectorKey }, 'collector', [LORAWAN_UPLINKS_FILTER])
    try {
      await sub.ready
      const summary = await runLorawanSimulation({
        dataDir: fleet.dataDir, brokerUrl: broker.url, network, integrationId, ...OPTIONS, durationMs: 4_000, scenario: loadScenario(file), truthFile, rejoinChance: 0.03,
      })
      expect(summary).toMatchObject({ failed: 0, registered: 29 }) // all but the unregistered one
      expect(broker.events.filter((e) => e.type === 'acl-denied')).toEqual([])
      await waitFor(() => sub.lines.length >= summary.acked, 5_000, 'the collector to catch up')
      const heard = sub.lines.map((line) => {
        expect(parseLorawanUplinkTopic(line.slice(0, line.indexOf(' ')))?.integrationId).toBe(integrationId)
        return parseLine(line.slice(lorawanUplinkTopic(integrationId, '').length), network)
      })
      expect(heard).toHaveLength(summary.acked)
      expectIncidentsOnTheWire(heard, truthFile, ids, network, integrationId)
      expectCleanCounters(heard, network, ids)
    } finally {
      sub.stop()
    }
  })
})
