/**
 * The LoRaWAN rules as pure functions: counter steps (wraps, retransmits,
 * replays), join windows, the gateway-shift guard, the signal baseline,
 * and the policy files' refusals of bad params, naming the field.
 */
import { describe, expect, it } from 'vitest'
import { validatePolicyText } from '../../policies/index.ts'
import { policySchema, type PolicyOf } from '../../policies/schema.ts'
import { emptyFrameCounter, frameStep, lorawanFcntResetRule } from '../../policies/rules/lorawan-fcnt-reset.ts'
import { confirmGatewayShift, emptyGatewayShift, type GatewayContext, lorawanGatewayShiftRule } from '../../policies/rules/lorawan-gateway-shift.ts'
import { busiestWindowAround, insertTime, lorawanIntegrationJoinFloodRule } from '../../policies/rules/lorawan-join-flood.ts'
import { emptySignalShift, lorawanSignalShiftRule } from '../../policies/rules/lorawan-signal-shift.ts'
import type { LorawanMessage } from '../../shared/lorawan.ts'

const parse = <I extends PolicyOf<'lorawan-fcnt-reset'>['id'] | 'lorawan-join-flood' | 'lorawan-gateway-shift' | 'lorawan-signal-shift'>(id: I, params: object = {}) =>
  policySchema.parse({ id, severity: 'high', params }) as PolicyOf<I>
const MIN = 60_000
const T0 = Date.parse('2026-12-01T00:00:00Z')
const up = (fCnt: number, atMs: number, gateways: LorawanMessage['gateways'] = []): LorawanMessage => ({ network: 'chirpstack', event: 'up', devEui: '0011223344556677', fCnt, receivedAtMs: atMs, gateways })

describe('frameStep', () => {
  const policy = parse('lorawan-fcnt-reset')
  it.each([
    [10, 11, 10 * MIN, 'forward'],
    [10, 5_000, 10 * MIN, 'forward'],
    [10, 10, 20_000, 'retransmission'],
    [10, 10, 6 * 60 * MIN, 'repeated'],
    [10, 9, 10 * MIN, 'back'],
    [500, 0, 10 * MIN, 'back'],
    // A 16-bit counter wraps; frames lost across the wrap are still a wrap…
    [0xffff, 0, 10 * MIN, 'wrap'],
    [0xfffe, 3, 60 * MIN, 'wrap'],
    // …but not one that would have needed thousands of frames in ten minutes (a replayed pre-wrap frame).
    [60_000, 1_000, 10 * MIN, 'back'],
    // Past 16 bits, only a 32-bit wrap can explain going back.
    [0x1_0005, 3, 10 * MIN, 'back'],
    [0xffff_ffff, 0, 10 * MIN, 'wrap'],
  ] as const)('%i → %i after %i ms is %s', (previous, next, elapsed, step) => {
    expect(frameStep(policy, previous, next, elapsed)).toBe(step)
  })
})

describe('lorawanFcntResetRule', () => {
  const policy = parse('lorawan-fcnt-reset')
  it('keeps a bounded history in time order and says which event was delivered late', () => {
    let state = emptyFrameCounter()
    for (let i = 0; i < 40; i++) state = lorawanFcntResetRule(policy, 'd', state, up(100 + i, T0 + i * 10 * MIN)).state
    expect(state.history).toHaveLength(16)
    const late = lorawanFcntResetRule(policy, 'd', state, up(200, T0 + 35 * 10 * MIN + MIN))
    expect(late.finding?.evidence).toMatchObject({ previousFCnt: 200, fCnt: 136, deliveredLate: true })
  })

  it('ignores status and log events', () => {
    const state = emptyFrameCounter()
    expect(lorawanFcntResetRule(policy, 'd', state, { ...up(0, T0), event: 'status' })).toEqual({ state, duplicate: false })
  })
})

describe('join windows', () => {
  it('finds the busiest window that holds a join, whatever order the joins came in', () => {
    let times: number[] = []
    for (const t of [50, 0, 30, 10, 200]) times = insertTime(times, t * MIN, 32)
    expect(times).toEqual([0, 10, 30, 50, 200].map((t) => t * MIN))
    expect(busiestWindowAround(times, 30 * MIN, 60 * MIN).count).toBe(4)
    expect(busiestWindowAround(times, 200 * MIN, 60 * MIN).count).toBe(1)
  })

  it('counts only repeat joins across an integration, and forgets none it needs', () => {
    const policy = parse('lorawan-join-flood', { integrationRepeats: 3, window: '1h' })
    const state = { lastJoinByDevEui: new Map<string, number>(), repeats: [] }
    const verdicts = ['a', 'b', 'c', 'a', 'b', 'c'].map((eui, i) => lorawanIntegrationJoinFloodRule(policy, 'cs', state, eui, T0 + i * MIN))
    expect(verdicts.map((v) => v !== undefined)).toEqual([false, false, false, false, false, true])
    expect(verdicts[5]).toMatchObject({ deviceId: 'integration:cs', evidence: { repeatJoins: 3 } })
  })
})

describe('lorawanGatewayShiftRule', () => {
  const policy = parse('lorawan-gateway-shift', { learningUplinks: 3, learningPeriod: '0s', shiftedUplinks: 2, recentUplinks: 4 })
  const context = (up: boolean | undefined, ownSite: string[] = []): GatewayContext => ({ ofOwnSite: (g) => ownSite.includes(g), sitesOf: () => ['elsewhere'], upAround: () => up })
  const learned = () => {
    let state = emptyGatewayShift()
    for (let i = 0; i < 4; i++) state = lorawanGatewayShiftRule(policy, 'd', 'home', state, up(i, T0 + i * MIN, [{ gatewayId: 'gw-a', rssi: -90, snr: 5 }]), context(true)).state
    return state
  }
  const away = (state: ReturnType<typeof emptyGatewayShift>, i: number, ctx: GatewayContext, gatewayId = 'gw-x') =>
    lorawanGatewayShiftRule(policy, 'd', 'home', state, up(10 + i, T0 + (10 + i) * MIN, [{ gatewayId, rssi: -90, snr: 5 }]), ctx)

  it('fires once its usual gateways are known to have been up, and learns the new gateways with it', () => {
    const first = away(learned(), 0, context(true))
    expect(first.finding).toBeUndefined()
    const second = away(first.state, 1, context(true))
    expect(second.finding).toMatchObject({ policy: 'lorawan-gateway-shift', evidence: { shiftedUplinks: 2, newGateways: 'gw-x', otherSites: 'elsewhere' } })
    expect(second.state.learned.map(([g]) => g)).toEqual(['gw-a', 'gw-x'])
    expect(away(second.state, 2, context(true)).finding).toBeUndefined()
  })

  it('holds suspects while it cannot tell, drops them when the usual gateways were down, and confirms them later', () => {
    const waiting = away(away(learned(), 0, context(undefined)).state, 1, context(undefined))
    expect(waiting.finding).toBeUndefined()
    expect(waiting.state.recent.filter((m) => m.mark === 'suspect')).toHaveLength(2)
    expect(confirmGatewayShift(policy, 'd', 'home', waiting.state, context(false)).state.recent.map((m) => m.mark)).toEqual(['usual'])
    expect(confirmGatewayShift(policy, 'd', 'home', waiting.state, context(true)).finding).toBeDefined()
  })

  it('takes a gateway of its own site as no shift, and a gateway id like __proto__ as any other', () => {
    expect(away(away(learned(), 0, context(true, ['gw-x'])).state, 1, context(true, ['gw-x'])).finding).toBeUndefined()
    const proto = away(away(learned(), 0, context(true), '__proto__').state, 1, context(true), '__proto__')
    expect(proto.finding).toBeDefined()
    expect(proto.state.learned.map(([g]) => g)).toEqual(['gw-a', '__proto__'])
  })
})

describe('lorawanSignalShiftRule', () => {
  const policy = parse('lorawan-signal-shift', { minSamples: 5, uplinks: 2, relearnAfter: 4 })
  const at = (rssi: number, snr: number, i: number) => up(i, T0 + i * MIN, [{ gatewayId: 'gw-a', rssi, snr }])
  it('seeds its baseline robustly (one fade while learning does not move it), and reads an RSSI of 0 as not reported', () => {
    let state = emptySignalShift()
    for (const [i, rssi] of [-90, -91, -60, -89, -90].entries()) state = lorawanSignalShiftRule(policy, 'd', state, at(rssi, 5, i)).state
    expect(state.baselines[0]).toMatchObject({ rssi: -90, warmup: null })
    state = lorawanSignalShiftRule(policy, 'd', state, at(0, 5, 10)).state
    expect(lorawanSignalShiftRule(policy, 'd', state, at(0, 5, 11)).finding).toBeUndefined()
    expect(state.baselines[0]!.rssi).toBeCloseTo(-90, 0)
  })

  it('relearns after relearnAfter shifted uplinks, without clearing the alert', () => {
    let state = emptySignalShift()
    for (let i = 0; i < 5; i++) state = lorawanSignalShiftRule(policy, 'd', state, at(-90, 5, i)).state
    const verdicts = [5, 6, 7, 8, 9].map((i) => { const v = lorawanSignalShiftRule(policy, 'd', state, at(-115, -5, i)); state = v.state; return v })
    expect(verdicts.map((v) => v.finding !== undefined)).toEqual([false, true, true, true, false])
    expect(verdicts.some((v) => v.clear)).toBe(false)
    expect(state.baselines[0]!.warmup).toEqual([[-115, -5]])
  })
})

describe('LoRaWAN policy params', () => {
  it.each([
    ['lorawan-fcnt-reset', '{ maxFrameGap: 0 }', 'policies.0.params.maxFrameGap'],
    ['lorawan-fcnt-reset', '{ retransmitWindow: soon }', 'policies.0.params.retransmitWindow'],
    ['lorawan-join-flood', '{ deviceJoins: 1 }', 'policies.0.params.deviceJoins'],
    ['lorawan-gateway-shift', '{ shiftedUplinks: 7, recentUplinks: 6 }', 'policies.0.params.shiftedUplinks'],
    ['lorawan-signal-shift', '{ minSamples: 2 }', 'policies.0.params.minSamples'],
    ['lorawan-signal-shift', '{ uplinks: 30, relearnAfter: 24 }', 'policies.0.params.uplinks'],
    ['lorawan-unknown-device', '{ registeredElsewhereSeverity: urgent }', 'policies.0.params.registeredElsewhereSeverity'],
    ['lorawan-unknown-device', '{ repeatAfter: 10s }', 'policies.0.params.repeatAfter'],
    ['lorawan-signal-shift', '{ minRssiShift: 10 }', 'policies.0.params'],
  ])('%s %s is refused naming %s', (id, params, field) => {
    expect(() => validatePolicyText(`policies:\n  - id: ${id}\n    severity: high\n    params: ${params}\n`)).toThrow(field)
  })
})
