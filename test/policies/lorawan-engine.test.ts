/**
 * The LoRaWAN policies in the engine, after a day learning a fleet: each
 * fires on its injected condition, and stays quiet on the look-alikes
 * ordinary radio life produces — an outage, a new gateway, a power cut,
 * a backlog delivered late, a redelivery, a restart.
 */
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { loadPolicyDirectory, PolicyEngine } from '../../policies/index.ts'
import type { LorawanObservation } from '../../shared/lorawan.ts'
import { feed, observe, type RadioDevice, radioDay, radioFleet, receive, seeded, testClock } from '../helpers/lorawan-radio.ts'

const shipped = loadPolicyDirectory(join(import.meta.dirname, '..', '..', 'policies')).map((l) => l.policy)
const START = Date.parse('2026-12-01T00:00:00Z')
const DAY = 86_400_000
const MIN = 60_000

/** A day of a clean fleet learned; `then(ms)` is the fleet's clean traffic from the day's end on, for `ms`, without `except` devices. */
function learnedDay (seed = 11, perSite?: Record<string, number>) {
  const random = seeded(seed)
  const devices = radioFleet(random, perSite)
  const clock = testClock(START)
  const engine = new PolicyEngine(shipped, clock)
  expect(feed(engine, clock, radioDay(devices, random, { startMs: START }))).toEqual([])
  const end = START + DAY
  const byId = (id: string) => devices.find((d) => d.deviceId === id)!
  const then = (ms: number, except: string[] = [], outages: Array<{ gatewayId: string, fromMs: number, untilMs: number }> = []) =>
    radioDay(devices.filter((d) => !except.includes(d.deviceId)), random, { startMs: end, durationMs: ms, outages })
  /** `count` uplinks of `device`, every `everyMs` from the day's end, heard as `gateways(i)` says (default: its own paths). */
  const uplinks = (device: RadioDevice, count: number, everyMs: number, gateways?: (i: number, at: number) => LorawanObservation['message']['gateways']) =>
    Array.from({ length: count }, (_, i) => {
      const at = end + 5 * MIN + i * everyMs
      const event = observe(device, { fCnt: device.fCnt++, receivedAtMs: at, gateways: gateways?.(i, at) ?? receive(device, random, at) })
      return event
    })
  return { engine, clock, devices, random, end, byId, then, uplinks }
}
const merged = (...streams: LorawanObservation[][]) => streams.flat().sort((a, b) => a.message.receivedAtMs - b.message.receivedAtMs)
const policies = (found: string[]) => found.map((f) => f.split(':')[0])

describe('lorawan-unknown-device', () => {
  it('is one alert per (integration, DevEUI) however often it sends, critical when another integration owns the DevEUI, and clears once registered', () => {
    const { engine, clock, end, byId } = learnedDay()
    const stranger = (minute: number, registeredTo?: string): LorawanObservation => ({
      integrationId: 'cs-council', network: 'chirpstack', ...(registeredTo ? { registeredTo } : {}),
      message: { network: 'chirpstack', event: 'up', devEui: 'a1b2c3d4e5f60718', fCnt: minute, receivedAtMs: end + minute * MIN, gateways: [{ gatewayId: 'gw-r1', rssi: -90, snr: 5 }] },
    })
    const verdicts = Array.from({ length: 30 }, (_, minute) => { clock.ms = end + minute * MIN; return engine.onLorawan(stranger(minute)) })
    const findings = verdicts.flatMap((v) => v.findings)
    expect(findings).toHaveLength(1)
    expect(findings[0]).toMatchObject({ policy: 'lorawan-unknown-device', deviceId: 'lorawan:cs-council:a1b2c3d4e5f60718', severity: 'medium', site: null, kind: null })
    // Still sending an hour later: reported again, to keep the one alert fresh.
    clock.ms = end + 61 * MIN
    expect(engine.onLorawan(stranger(61)).findings).toHaveLength(1)
    // Another integration's device, from this one: spoofing, at the higher severity, naming the owner.
    const estate = byId('estate-1')
    clock.ms += MIN
    const spoofed = engine.onLorawan({ integrationId: 'cs-council', network: 'chirpstack', registeredTo: 'tts-housing', message: { network: 'chirpstack', event: 'up', devEui: estate.devEui, fCnt: 1, receivedAtMs: clock.ms, gateways: [] } })
    expect(spoofed.findings).toEqual([expect.objectContaining({ deviceId: `lorawan:cs-council:${estate.devEui}`, severity: 'critical', evidence: expect.objectContaining({ registeredTo: 'tts-housing' }) })])
    // A join for an unknown DevEUI is reported too (the pair is already, so nothing new).
    expect(engine.onLorawan({ ...stranger(63), message: { ...stranger(63).message, event: 'join', gateways: [] } }).findings).toEqual([])
    // The operator registers the DevEUI to cs-council: the pair's alert clears.
    const registered = engine.onLorawan({ ...stranger(64), device: { deviceId: 'riverside-new', kind: 'flood', site: 'riverside' } })
    expect(registered.findings).toEqual([])
    expect(registered.clears).toContainEqual(expect.objectContaining({ policy: 'lorawan-unknown-device', deviceId: 'lorawan:cs-council:a1b2c3d4e5f60718' }))
  })
})

describe('lorawan-unknown-device for a whole unregistered fleet', () => {
  it('alerts the first 20 DevEUIs one by one, then one alert for the integration; a spoofed DevEUI is still its own', () => {
    const { engine, clock, end, byId } = learnedDay()
    const found = Array.from({ length: 30 }, (_, i) => {
      clock.ms = end + i * 1_000
      return engine.onLorawan({ integrationId: 'cs-council', network: 'chirpstack', message: { network: 'chirpstack', event: 'up', devEui: (0xabc000n + BigInt(i)).toString(16).padStart(16, '0'), fCnt: 1, receivedAtMs: clock.ms, gateways: [] } }).findings
    }).flat()
    expect(found).toHaveLength(30)
    expect(new Set(found.map((f) => f.deviceId)).size).toBe(21)
    expect(found.at(-1)).toMatchObject({ deviceId: 'lorawan:cs-council:unregistered', evidence: { devEuisReported: 29 } })
    const spoofed = engine.onLorawan({ integrationId: 'cs-council', network: 'chirpstack', registeredTo: 'tts-housing', message: { network: 'chirpstack', event: 'up', devEui: byId('estate-2').devEui, fCnt: 1, receivedAtMs: clock.ms, gateways: [] } })
    expect(spoofed.findings).toEqual([expect.objectContaining({ deviceId: `lorawan:cs-council:${byId('estate-2').devEui}`, severity: 'critical' })])
  })
})

describe('lorawan-fcnt-reset', () => {
  it('fires on a replayed old frame and on an ABP reset to 0, and not on a join followed by 0', () => {
    const { engine, clock, byId, uplinks } = learnedDay()
    const device = byId('riverside-1')
    const [a, b] = uplinks(device, 2, 12 * MIN)
    expect(feed(engine, clock, [a!])).toEqual([])
    // Frame a again, captured and sent once more: accepted by a network server that relaxes its counter check.
    const replayed = { ...a!, message: { ...a!.message, receivedAtMs: b!.message.receivedAtMs } }
    const [replay] = engine.onLorawan(replayed).findings
    expect(replay).toMatchObject({ policy: 'lorawan-fcnt-reset', deviceId: 'riverside-1', site: 'riverside', evidence: { step: 'repeated', likely: 'replay' } })
    clock.ms += 12 * MIN
    const reset = engine.onLorawan(observe(device, { fCnt: 0, receivedAtMs: clock.ms, gateways: receive(device, seeded(1), clock.ms) }))
    expect(reset.findings).toEqual([expect.objectContaining({ evidence: expect.objectContaining({ step: 'back', likely: 'abp-reset', fCnt: 0 }) })])
    // The counter now goes on from 0: no further finding.
    clock.ms += 12 * MIN
    expect(engine.onLorawan(observe(device, { fCnt: 1, receivedAtMs: clock.ms })).findings).toEqual([])
    // A join, then a counter from 0: a new session.
    const other = byId('riverside-2')
    clock.ms += MIN
    expect(engine.onLorawan(observe(other, { event: 'join', receivedAtMs: clock.ms })).findings).toEqual([])
    clock.ms += MIN
    expect(engine.onLorawan(observe(other, { fCnt: 0, receivedAtMs: clock.ms })).findings).toEqual([])
  })

  it('sets aside a redelivered event, and judges a backlog delivered late against its neighbours in time', () => {
    const { engine, clock, byId, uplinks } = learnedDay()
    const device = byId('hillside-2')
    const frames = uplinks(device, 6, 11 * MIN)
    // The newest three arrive first (live), the older three after them (a stored backlog): consistent, so quiet.
    expect(feed(engine, clock, [...frames.slice(3), ...frames.slice(0, 3)])).toEqual([])
    // The broker resends the last one (same event): nothing, not even learned twice.
    const learnedBefore = engine.exportDevices((id) => id === 'hillside-2').lorawan
    expect(engine.onLorawan(frames[5]!)).toEqual({ findings: [], clears: [] })
    expect(engine.exportDevices((id) => id === 'hillside-2').lorawan).toEqual(learnedBefore)
    // A late event that does not fit between its neighbours in time: frame counter 3 back, between frames 2 and 3.
    const misfit = observe(device, { fCnt: frames[0]!.message.fCnt!, receivedAtMs: frames[2]!.message.receivedAtMs + MIN })
    expect(policies(feed(engine, clock, [misfit]))).toEqual(['lorawan-fcnt-reset hillside-2'])
  })

  it('clears its finding when the join between the two uplinks is delivered late', () => {
    const { engine, clock, byId, end } = learnedDay()
    const device = byId('riverside-3')
    const joinAt = end + 10 * MIN
    const first = engine.onLorawan(observe(device, { fCnt: 0, receivedAtMs: joinAt + 5_000 }))
    expect(first.findings.map((f) => f.policy)).toEqual(['lorawan-fcnt-reset'])
    clock.ms += 2_000
    const join = engine.onLorawan(observe(device, { event: 'join', receivedAtMs: joinAt }))
    expect(join.findings).toEqual([])
    expect(join.clears).toContainEqual(expect.objectContaining({ policy: 'lorawan-fcnt-reset', deviceId: 'riverside-3' }))
  })
})

describe('lorawan-join-flood', () => {
  it('fires on a device joining 4 times within the hour, not on its third join', () => {
    const { engine, clock, byId, end } = learnedDay()
    const device = byId('riverside-4')
    const joins = [0, 10, 20, 30].map((m) => observe(device, { event: 'join', receivedAtMs: end + m * MIN }))
    expect(feed(engine, clock, joins.slice(0, 3))).toEqual([])
    expect(policies(feed(engine, clock, joins.slice(3)))).toEqual(['lorawan-join-flood riverside-4'])
  })

  it('takes a power cut (every device joins once, however many) as no flood, and many devices each rejoining a few times as one', () => {
    const { engine, clock, end } = learnedDay()
    const fleet = radioFleet(seeded(99), { riverside: 60, hillside: 40 }).map((d, i) => ({ ...d, deviceId: `cut-${i}`, devEui: (0x1234n * 0x10000n + BigInt(i)).toString(16).padStart(16, '0') }))
    const cut = fleet.map((d, i) => observe(d, { event: 'join', receivedAtMs: end + i * 1_000 }))
    expect(feed(engine, clock, cut)).toEqual([])
    // Then 20 of them rejoin twice more within the hour: below the device threshold each, a flood together.
    const again = fleet.slice(0, 20).flatMap((d, i) => [observe(d, { event: 'join', receivedAtMs: end + 10 * MIN + i * 5_000 }), observe(d, { event: 'join', receivedAtMs: end + 20 * MIN + i * 5_000 })])
    const found = feed(engine, clock, merged(again))
    expect(found.every((f) => f.startsWith('lorawan-join-flood integration:cs-council'))).toBe(true)
    expect(found.length).toBeGreaterThan(0)
  })
})

describe('lorawan-gateway-shift', () => {
  it('fires on a device heard only through gateways it never used while its usual gateways hear the others; names another site', () => {
    const { engine, clock, byId, then, uplinks } = learnedDay()
    const device = byId('riverside-5')
    const moved = uplinks(device, 4, 12 * MIN, () => [{ gatewayId: 'gw-h2', rssi: -100, snr: 2 }])
    const found = feed(engine, clock, merged(then(60 * MIN, ['riverside-5']), moved))
    expect(found.filter((f) => f.includes('gateway-shift'))).toHaveLength(1)
    expect(found[0]).toMatch(/^lorawan-gateway-shift riverside-5: heard only through gateways it never used in 3 of its last \d+ uplinks, gateways of another site \(hillside\)/)
  })

  it('fires on a clone: the device heard at home and elsewhere by turns', () => {
    const { engine, clock, byId, then, random, end } = learnedDay()
    const device = byId('riverside-6')
    const clone = Array.from({ length: 8 }, (_, i) => {
      const at = end + 5 * MIN + i * 6 * MIN
      return observe(device, { fCnt: device.fCnt++, receivedAtMs: at, gateways: i % 2 === 0 ? receive(device, random, at) : [{ gatewayId: 'gw-rogue', rssi: -80, snr: 8 }] })
    })
    expect(policies(feed(engine, clock, merged(then(60 * MIN, ['riverside-6']), clone))).filter((p) => p!.includes('gateway-shift'))).toEqual(['lorawan-gateway-shift riverside-6'])
  })

  it('stays quiet when its usual gateways hear nobody (an outage), and for one odd path', () => {
    const { engine, clock, byId, then, uplinks, end } = learnedDay()
    // Riverside's gateways all down for an hour; a riverside device is picked up by a hillside gateway meanwhile.
    const down = ['gw-r1', 'gw-r2', 'gw-r3'].map((gatewayId) => ({ gatewayId, fromMs: end, untilMs: end + 60 * MIN }))
    const device = byId('riverside-2')
    const rescued = uplinks(device, 4, 12 * MIN, () => [{ gatewayId: 'gw-h2', rssi: -124, snr: -12 }])
    expect(feed(engine, clock, merged(then(60 * MIN, ['riverside-2'], down), rescued))).toEqual([])
    // One uplink by a far gateway among ordinary ones.
    const odd = uplinks(byId('riverside-3'), 5, 12 * MIN, (i, at) => i === 2 ? [{ gatewayId: 'gw-far', rssi: -128, snr: -18 }] : receive(byId('riverside-3'), seeded(i), at))
    expect(feed(engine, clock, odd.map((e) => ({ ...e, message: { ...e.message, receivedAtMs: e.message.receivedAtMs + 60 * MIN } })))).toEqual([])
  })

  it('stays quiet for a gateway installed at its site: heard alongside the old ones by neighbours, then the only one hearing it (ADR lowered its power)', () => {
    const { engine, clock, byId, then, end } = learnedDay()
    const neighbours = ['riverside-1', 'riverside-4'].map((id) => observe(byId(id), { fCnt: byId(id).fCnt++, receivedAtMs: end + MIN, gateways: [...receive(byId(id), seeded(5), end + MIN), { gatewayId: 'gw-r4', rssi: -70, snr: 9 }] }))
    const adr = Array.from({ length: 5 }, (_, i) => observe(byId('riverside-5'), { fCnt: byId('riverside-5').fCnt++, receivedAtMs: end + (i + 1) * 12 * MIN, gateways: [{ gatewayId: 'gw-r4', rssi: -95, snr: 4 }] }))
    expect(feed(engine, clock, merged(then(90 * MIN, ['riverside-5', 'riverside-1', 'riverside-4']), neighbours, adr)).filter((f) => f.includes('gateway-shift'))).toEqual([])
  })

  it('at a one-gateway site: quiet while its gateway is down, fires while its gateway still hears the other device', () => {
    for (const gatewayDown of [true, false]) {
      const { engine, clock, byId, then, uplinks, end } = learnedDay()
      const outages = gatewayDown ? [{ gatewayId: 'gw-e1', fromMs: end, untilMs: end + 90 * MIN }] : []
      const moved = uplinks(byId('estate-1'), 4, 12 * MIN, () => [{ gatewayId: 'gw-h1', rssi: -118, snr: -9 }])
      const found = feed(engine, clock, merged(then(90 * MIN, ['estate-1'], outages), moved)).filter((f) => f.includes('gateway-shift'))
      expect(found.map((f) => f.split(':')[0])).toEqual(gatewayDown ? [] : ['lorawan-gateway-shift estate-1'])
    }
  })

  it('does not judge during a cold start: a device still learning is heard elsewhere without a finding', () => {
    const { engine, clock, end, then } = learnedDay()
    const newcomer = radioFleet(seeded(3), { riverside: 1 })[0]!
    const device = { ...newcomer, deviceId: 'riverside-new', devEui: 'ffffffffffff0001' }
    const early = Array.from({ length: 10 }, (_, i) => observe(device, { fCnt: i, receivedAtMs: end + i * 12 * MIN, gateways: i < 5 ? receive(device, seeded(i), end + i * 12 * MIN) : [{ gatewayId: 'gw-h2', rssi: -100, snr: 2 }] }))
    expect(feed(engine, clock, merged(then(2 * 3_600_000), early)).filter((f) => f.includes('riverside-new'))).toEqual([])
  })
})

describe('lorawan-signal-shift', () => {
  it('fires after 4 uplinks off the baseline at its gateways, not on a single fade, and clears when the signal is back', () => {
    const { engine, clock, byId, random, end } = learnedDay()
    const device = byId('hillside-3')
    const at = (i: number) => end + (i + 1) * 12 * MIN
    const up = (i: number, offsetDb: number) => observe(device, { fCnt: device.fCnt++, receivedAtMs: at(i), gateways: receive({ ...device, paths: device.paths.map((p) => ({ ...p, rssi: Math.max(p.rssi, -105) })) }, random, at(i), [], offsetDb) })
    // One deep fade in the middle of ordinary uplinks.
    expect(feed(engine, clock, [up(0, 0), up(1, -25), up(2, 0)]).filter((f) => f.includes('signal-shift'))).toEqual([])
    // Shielded: 20 dB down at every gateway, uplink after uplink.
    const shielded = [3, 4, 5, 6].map((i) => feed(engine, clock, [up(i, -20)]).filter((f) => f.includes('signal-shift')))
    expect(shielded.map((f) => f.length)).toEqual([0, 0, 0, 1])
    expect(shielded[3]![0]).toMatch(/RSSI -[12]\d(\.\d)? dB/)
    // Back where it was: cleared after 4 uplinks on the baseline.
    const clears = [7, 8, 9, 10].flatMap((i) => { clock.ms = at(i) + 300; return engine.onLorawan(up(i, 0)).clears.filter((c) => c.policy === 'lorawan-signal-shift') })
    expect(clears).toHaveLength(1)
  })

  it('a device moved for good is one episode: after relearnAfter uplinks the new level is its baseline', () => {
    const { engine, clock, byId, random, end } = learnedDay()
    const device = byId('riverside-1')
    const found = Array.from({ length: 60 }, (_, i) => {
      const at = end + (i + 1) * 12 * MIN
      return feed(engine, clock, [observe(device, { fCnt: device.fCnt++, receivedAtMs: at, gateways: receive(device, random, at, [], -18).filter((g) => g.rssi > -125) })])
    }).map((f) => f.filter((x) => x.includes('signal-shift')).length)
    const firstQuietAfter = found.findLastIndex((n) => n > 0)
    expect(found.slice(0, 2)).toEqual([0, 0])
    expect(firstQuietAfter).toBeLessThan(30)
  })

  it('judges by majority of the gateways that know the device: one gateway off is a path, two of three a shift', () => {
    for (const off of [1, 2]) {
      const { engine, clock, random, end } = learnedDay()
      const device: RadioDevice = { ...radioFleet(seeded(8), { riverside: 1 })[0]!, deviceId: 'riverside-strong', devEui: 'ffffffffffff0002' }
      device.paths = [{ gatewayId: 'gw-r1', rssi: -80, snr: 8 }, { gatewayId: 'gw-r2', rssi: -90, snr: 5 }, { gatewayId: 'gw-r3', rssi: -95, snr: 3 }]
      const stream = Array.from({ length: 40 }, (_, i) => {
        const at = end + i * 12 * MIN
        const gateways = receive(device, random, at).map((g, k) => i >= 36 && k < off ? { ...g, rssi: g.rssi - 25 } : g)
        return observe(device, { fCnt: i, receivedAtMs: at, gateways })
      })
      const found = feed(engine, clock, stream).filter((f) => f.includes('signal-shift'))
      expect(found.length > 0).toBe(off === 2)
    }
  })

  it('catches a gateway jammed at a one-gateway site on every device there (SNR down)', () => {
    const { engine, clock, byId, random, end } = learnedDay()
    const estate = ['estate-1', 'estate-2'].map(byId)
    const jammed = estate.flatMap((d, k) => [0, 1, 2, 3].map((i) => {
      const at = end + (i + 1) * 12 * MIN + k * MIN
      return observe(d, { fCnt: d.fCnt++, receivedAtMs: at, gateways: receive(d, random, at).map((g) => ({ ...g, snr: g.snr - 14 })) })
    }))
    const found = feed(engine, clock, merged(jammed)).filter((f) => f.includes('signal-shift'))
    expect(found.map((f) => f.split(':')[0]).sort()).toEqual(['lorawan-signal-shift estate-1', 'lorawan-signal-shift estate-2'])
  })
})

describe('LoRaWAN state across a restart or a partition move', () => {
  it('carries learned gateways, baselines and counters: the next engine judges at once, a fresh one could not', () => {
    const { engine, clock, byId, uplinks, then } = learnedDay()
    const snapshot = JSON.parse(JSON.stringify(engine.exportDevices(() => true))) as unknown
    const restarted = new PolicyEngine(shipped, clock)
    const fresh = new PolicyEngine(shipped, clock)
    expect(restarted.importDevices(snapshot)).toMatchObject({ lorawan: 12 })
    const device = byId('riverside-5')
    const stream = merged(then(60 * MIN, ['riverside-5']), uplinks(device, 4, 12 * MIN, () => [{ gatewayId: 'gw-x', rssi: -80, snr: 8 }]))
    const replay = observe(byId('riverside-1'), { fCnt: 3, receivedAtMs: stream.at(-1)!.message.receivedAtMs + MIN })
    expect(policies(feed(restarted, clock, [...stream, replay])).filter((p) => !p!.includes('signal'))).toEqual(['lorawan-gateway-shift riverside-5', 'lorawan-fcnt-reset riverside-1'])
    // A fresh engine hears the hour too, so it knows the counter, but is still learning where the devices are heard.
    expect(policies(feed(fresh, clock, [...stream, replay])).filter((p) => !p!.includes('signal'))).toEqual(['lorawan-fcnt-reset riverside-1'])
  })

  it('goes on quietly after a restart in the middle of a clean day', () => {
    const random = seeded(21)
    const devices = radioFleet(random)
    const clock = testClock(START)
    const before = new PolicyEngine(shipped, clock)
    const day = radioDay(devices, random, { startMs: START, durationMs: 2 * DAY, rejoins: { 'riverside-2': START + 30 * 3_600_000 } })
    const half = day.findIndex((e) => e.message.receivedAtMs > START + DAY)
    expect(feed(before, clock, day.slice(0, half))).toEqual([])
    const after = new PolicyEngine(shipped, clock)
    after.importDevices(JSON.parse(JSON.stringify(before.exportDevices(() => true))) as unknown)
    // The collector was down for 20 minutes: the broker delivers what it stored meanwhile after ten minutes of live traffic.
    const rest = day.slice(half)
    const at = (minutes: number) => rest.findIndex((e) => e.message.receivedAtMs > rest[0]!.message.receivedAtMs + minutes * MIN)
    const [backlog, live, later] = [rest.slice(0, at(20)), rest.slice(at(20), at(30)), rest.slice(at(30))]
    expect(backlog.length).toBeGreaterThan(10)
    expect(feed(after, clock, [...live, ...backlog, ...later])).toEqual([])
  })
})

describe('LoRaWAN redeliveries with lorawan-fcnt-reset off', () => {
  it('still recognises the very event again, so the other policies do not learn it twice', () => {
    const random = seeded(5)
    const [device] = radioFleet(random, { riverside: 1 })
    const clock = testClock(START)
    const engine = new PolicyEngine(shipped.filter((p) => p.id !== 'lorawan-fcnt-reset'), clock)
    const event = observe(device!, { fCnt: 1, receivedAtMs: START, gateways: receive(device!, random, START) })
    engine.onLorawan(event)
    const learned = engine.exportDevices(() => true).lorawan
    expect(engine.onLorawan(event)).toEqual({ findings: [], clears: [] })
    expect(engine.exportDevices(() => true).lorawan).toEqual(learned)
    // A replayed counter is not reported with the policy off.
    expect(engine.onLorawan(observe(device!, { fCnt: 0, receivedAtMs: START + 3_600_000 })).findings).toEqual([])
  })
})

describe('a fleet of two, each alone at its site', () => {
  it('is quiet for a day, still judges its signal, and cannot judge a gateway shift (nobody else shows its gateways are up)', () => {
    const { engine, clock, byId, uplinks } = learnedDay(13, { riverside: 1, estate: 1 })
    const device = byId('riverside-1')
    const found = policies(feed(engine, clock, uplinks(device, 6, 12 * MIN, () => [{ gatewayId: 'gw-elsewhere', rssi: -80, snr: 9 }])))
    expect(found).toEqual([])
    const shielded = policies(feed(engine, clock, uplinks(byId('estate-1'), 5, 12 * MIN, (_i, at) => receive(byId('estate-1'), seeded(2), at, [], -25))))
    expect(shielded).toContain('lorawan-signal-shift estate-1')
  })
})

describe('a fleet on a fast cadence (every 10 s, as a test bench runs it)', () => {
  it('learns in minutes and catches a relocation and a shielding within the next minutes, with the rest quiet', () => {
    const random = seeded(31)
    const devices = radioFleet(random).map((d) => ({ ...d, intervalMs: 10_000 }))
    const clock = testClock(START)
    const engine = new PolicyEngine(shipped, clock)
    const half = 15 * MIN
    const first = radioDay(devices, random, { startMs: START, durationMs: half })
    expect(feed(engine, clock, first)).toEqual([])
    const moved = devices.find((d) => d.deviceId === 'hillside-2')!
    moved.paths = [{ gatewayId: 'gw-r1', rssi: -100, snr: 0 }]
    const shielded = devices.find((d) => d.deviceId === 'riverside-4')!
    shielded.paths = shielded.paths.map((p) => ({ ...p, rssi: p.rssi - 22, snr: p.snr - 8 }))
    const found = feed(engine, clock, radioDay(devices, random, { startMs: START + half, durationMs: 5 * MIN }))
    expect([...new Set(found.map((f) => f.split(':')[0]))].sort()).toEqual(['lorawan-gateway-shift hillside-2', 'lorawan-signal-shift riverside-4'])
  })
})

describe('the telemetry of a LoRaWAN device', () => {
  it('leaves its frame counter to lorawan-fcnt-reset: a 16-bit wrap across lost frames is no replay; a certificate device\'s seq still is', () => {
    const clock = testClock(START)
    const engine = new PolicyEngine(shipped, clock)
    const [device] = radioFleet(seeded(4), { riverside: 1 })
    const reading = (deviceId: string, seq: number, at: number) => ({ deviceId, kind: 'flood' as const, site: 'riverside', ts: at, seq, fw: '3.2.1', readings: { level_cm: 80, battery_v: 3.5 }, receivedAtMs: at })
    const found: string[] = []
    for (const [i, fCnt] of [0xfffc, 0xfffd, 0xfffe, 2, 3].entries()) {
      clock.ms = START + i * 10 * MIN
      found.push(...engine.onLorawan(observe(device!, { fCnt, receivedAtMs: clock.ms })).findings.map((f) => f.policy))
      found.push(...engine.onTelemetry(reading(device!.deviceId, fCnt, clock.ms)).findings.map((f) => f.policy))
      found.push(...engine.onTelemetry(reading('flood-cert', fCnt, clock.ms)).findings.map((f) => `${f.policy} flood-cert`))
    }
    expect(found).toEqual(['replay flood-cert'])
  })
})
