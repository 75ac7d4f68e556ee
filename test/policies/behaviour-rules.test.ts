import { describe, expect, it } from 'vitest'
import type { SecurityEvent } from '../../broker/index.ts'
import { deviceSilentRule } from '../../policies/rules/device-silent.ts'
import { emptyWindow, eventWindowRule, policyForEvent } from '../../policies/rules/event-window.ts'
import { policySchema, type PolicyOf } from '../../policies/schema.ts'
import { rateBurstRule, robustZ } from '../../policies/rules/rate-burst.ts'
import { brokerThrottleRule } from '../../policies/rules/rate-burst.ts'

const event = (fields: Partial<SecurityEvent>): SecurityEvent => ({ type: 'connect', at: '2026-11-23T12:00:00Z', reason: 'x', ...fields })

describe('policyForEvent', () => {
  it.each([
    [event({ type: 'tls-rejected', code: 'CERT_REVOKED', deviceId: 'f-1' }), 'cert-revoked-attempt', 'f-1'],
    [event({ type: 'tls-rejected', code: 'CERT_HAS_EXPIRED', deviceId: 'f-1' }), 'cert-rejected', 'f-1'],
    [event({ type: 'tls-rejected', code: 'UNABLE_TO_GET_ISSUER_CERT', claimedId: 'f-1', remoteAddress: '10.1.2.3:4444' }), 'cert-rejected', 'address:10.1.2.3'],
    [event({ type: 'tls-rejected', code: 'NO_CERTIFICATE', remoteAddress: '10.1.2.3:4444' }), 'cert-rejected', 'address:10.1.2.3'],
    // A peer that hung up mid-handshake is a connection coming and going, not a refused certificate.
    [event({ type: 'tls-rejected', code: 'HANDSHAKE_ABANDONED', reason: 'TLS handshake abandoned: the peer closed the connection (socket hang up)', remoteAddress: '10.1.2.3:4444' }), 'connection-flapping', 'address:10.1.2.3'],
    // Detection matches the broker's name for it, not a Node errno: any other handshake failure is a refusal.
    [event({ type: 'tls-rejected', code: 'ERR_SSL_WRONG_VERSION_NUMBER', remoteAddress: '10.1.2.3:4444' }), 'cert-rejected', 'address:10.1.2.3'],
    [event({ type: 'tls-rejected', code: 'HANDSHAKE_TIMEOUT', remoteAddress: '10.1.2.3:4444' }), 'cert-rejected', 'address:10.1.2.3'],
    [event({ type: 'acl-denied', deviceId: 'f-1' }), 'acl-violation', 'f-1'],
    [event({ type: 'duplicate-identity', deviceId: 'f-1' }), 'identity-clone', 'f-1'],
    [event({ type: 'connect', deviceId: 'f-1' }), 'connection-flapping', 'f-1'],
    [event({ type: 'payload-invalid', deviceId: 'f-1' }), 'payload-invalid', 'f-1'],
    // Bytes the broker could not read as MQTT from the device: the same finding, from the broker.
    [event({ type: 'protocol-violation', code: 'MALFORMED_PACKET', deviceId: 'f-1' }), 'payload-invalid', 'f-1'],
    [event({ type: 'protocol-violation', code: 'MALFORMED_UTF8', deviceId: 'f-1' }), 'payload-invalid', 'f-1'],
    [event({ type: 'packet-too-large', deviceId: 'f-1' }), 'payload-invalid', 'f-1'],
  ])('%o → %s for %s', (input, policy, key) => {
    expect(policyForEvent(input)).toEqual({ policy, key })
  })

  it('ignores events no policy is about, and the collector\'s own connects', () => {
    expect(policyForEvent(event({ type: 'disconnect', deviceId: 'f-1' }))).toBeUndefined()
    expect(policyForEvent(event({ type: 'crl-reloaded' }))).toBeUndefined()
    expect(policyForEvent(event({ type: 'connect', deviceId: 'collector:collector' }))).toBeUndefined()
  })
})

describe('eventWindowRule', () => {
  const flapping = policySchema.parse({ id: 'connection-flapping', severity: 'low', params: { connects: 3, window: '1m' } }) as PolicyOf<'connection-flapping'>
  it('fires at the threshold inside the window, not before, and forgets what left the window', () => {
    let state = emptyWindow()
    const results = [0, 20_000, 70_000, 80_000, 90_000].map((now) => {
      const result = eventWindowRule(flapping, 'f-1', state, event({ type: 'connect', deviceId: 'f-1' }), now)
      state = result.state
      return result.finding !== undefined
    })
    // 0 and 20 s, then 70 s: the first has left the 60 s window; 80 s makes 20/70/80 three inside it.
    expect(results).toEqual([false, false, false, true, true])
    expect(state.times.length).toBeLessThanOrEqual(3) // bounded state
  })

  it('carries evidence an analyst can act on', () => {
    const rejected = policySchema.parse({ id: 'cert-rejected', severity: 'high' }) as PolicyOf<'cert-rejected'>
    const { finding } = eventWindowRule(rejected, 'address:10.0.0.9', emptyWindow(), event({ type: 'tls-rejected', reason: 'certificate from an unknown CA', code: 'UNABLE_TO_GET_ISSUER_CERT', remoteAddress: '10.0.0.9:5000' }), 1_000)
    expect(finding).toMatchObject({ policy: 'cert-rejected', deviceId: 'address:10.0.0.9', severity: 'high', evidence: { count: 1, threshold: 1, reason: 'certificate from an unknown CA', remoteAddress: '10.0.0.9:5000' } })
  })
})

describe('rate-burst', () => {
  const rule = policySchema.parse({ id: 'rate-burst', severity: 'medium', params: { factor: 5, zScore: 4, warmupMessages: 20 } }) as PolicyOf<'rate-burst'>
  const peers = [6, 6, 6.2, 5.8, 6, 6.1, 5.9]
  it('fires when the device outruns both its baseline and its peers', () => {
    expect(rateBurstRule(rule, { deviceId: 'e-1', kind: 'energy', currentPerMinute: 240, baselinePerMinute: 6, messages: 500, ageMs: 600_000 }, peers)?.evidence).toMatchObject({ ratio: 40 })
  })
  it('stays quiet while warming up, below the factor, or when the whole fleet changed', () => {
    expect(rateBurstRule(rule, { deviceId: 'e-1', kind: 'energy', currentPerMinute: 240, baselinePerMinute: 6, messages: 10, ageMs: 600_000 }, peers)).toBeUndefined()
    expect(rateBurstRule(rule, { deviceId: 'e-1', kind: 'energy', currentPerMinute: 24, baselinePerMinute: 6, messages: 500, ageMs: 600_000 }, peers)).toBeUndefined()
    expect(rateBurstRule(rule, { deviceId: 'e-1', kind: 'energy', currentPerMinute: 60, baselinePerMinute: 6, messages: 500, ageMs: 600_000 }, [60, 61, 59, 60, 60])).toBeUndefined()
  })
  it('stays quiet for the first devices of a site to change pace together, which stand out only until the rest follow', () => {
    // Six meters switched from 6 to 240 a minute, seconds apart: mid-way, the first is far out of a tight crowd (z ≫ 4)
    // but under twice what the crowd already does.
    const midway = [240, 150, 148, 152, 150, 6]
    expect(robustZ(240, midway)).toBeGreaterThan(4)
    expect(rateBurstRule(rule, { deviceId: 'e-1', kind: 'energy', currentPerMinute: 240, baselinePerMinute: 6, messages: 500, ageMs: 600_000 }, midway)).toBeUndefined()
    // One meter alone at 240 among its peers still at 6 is a burst.
    expect(rateBurstRule(rule, { deviceId: 'e-1', kind: 'energy', currentPerMinute: 240, baselinePerMinute: 6, messages: 500, ageMs: 600_000 }, [240, 6, 6, 6, 6, 6])?.evidence).toMatchObject({ judgedOn: 'baseline and peers' })
  })
  it('finds a device that has flooded since it was first seen by its peers, though its baseline is the flood', () => {
    const chronic = { deviceId: 'e-1', kind: 'energy' as const, currentPerMinute: 240, baselinePerMinute: 238, messages: 500, ageMs: 600_000 }
    const learned = [238, 15, 15, 15, 15, 15]
    const finding = rateBurstRule(rule, chronic, [240, 15, 15, 16, 14, 15], { peerBaselines: learned })
    expect(finding?.evidence).toMatchObject({ judgedOn: 'peers', ratio: 1, peerMedianPerMinute: 15 })
    expect(finding?.summary).toMatch(/16× its peers' median of 15\.0; its own baseline of 238\.0 was learned at about this pace/)
    // Under `factor` × the peers' median, or slower than one a second: a faster configuration, not a flood.
    expect(rateBurstRule(rule, { ...chronic, currentPerMinute: 70, baselinePerMinute: 70 }, [70, 15, 15, 16, 14, 15], { peerBaselines: [70, 15, 15, 15, 15, 15] })).toBeUndefined()
    expect(rateBurstRule(rule, { ...chronic, currentPerMinute: 6, baselinePerMinute: 6 }, [6, 0.2, 0.2, 0.2, 0.2], { peerBaselines: [6, 0.2, 0.2, 0.2, 0.2] })).toBeUndefined()
    // Peers fallen quiet together (their backhaul down) while one keeps to its usual pace of one a second: no flood.
    expect(rateBurstRule(rule, { ...chronic, currentPerMinute: 60, baselinePerMinute: 60 }, [60, 0, 0, 0, 0], { peerBaselines: [60, 60, 60, 60, 60] })).toBeUndefined()
  })
  it('at a small site, judges a device that has flooded since it was first seen by its kind across the fleet', () => {
    const chronic = { deviceId: 'e-1', kind: 'energy' as const, currentPerMinute: 240, baselinePerMinute: 238, messages: 500, ageMs: 600_000 }
    const kind = { kindRates: [240, 15, 15, 16, 14, 15, 15], kindBaselines: [238, 15, 15, 15, 15, 15, 15] }
    for (const site of [[240], [240, 15]]) {
      const finding = rateBurstRule(rule, chronic, site, { peerBaselines: site, ...kind })
      expect(finding?.evidence).toMatchObject({ judgedOn: 'kind across the fleet', peers: site.length, peersJudgedOn: 7 })
      expect(finding?.summary).toMatch(/judged on its kind across the fleet/)
    }
    // Without a crowd anywhere (a fleet of two of its kind), only its own baseline or the ceiling can say.
    expect(rateBurstRule(rule, chronic, [240, 15], { peerBaselines: [238, 15], kindRates: [240, 15], kindBaselines: [238, 15] })).toBeUndefined()
    // A whole kind that runs this fast is no flood.
    expect(rateBurstRule(rule, chronic, [240], { kindRates: [240, 240, 238, 241], kindBaselines: [238, 240, 240, 240] })).toBeUndefined()
  })
  it('uses a robust z-score that one outlier cannot mask', () => {
    expect(robustZ(100, [10, 11, 9, 10, 100, 10])).toBeGreaterThan(4)
    expect(robustZ(10, [10, 11, 9, 10, 100, 10])).toBeLessThan(1)
  })
  it('judges a device with fewer than two peers on its own baseline, and says so', () => {
    for (const site of [[], [6], [240, 6]]) {
      const finding = rateBurstRule(rule, { deviceId: 'e-1', kind: 'energy', currentPerMinute: 240, baselinePerMinute: 6, messages: 500, ageMs: 600_000 }, site)
      expect(finding?.evidence).toMatchObject({ judgedOn: 'own baseline', ratio: 40, peers: site.length })
      expect(finding?.summary).toMatch(/judged on its own baseline/)
    }
    expect(rateBurstRule(rule, { deviceId: 'e-1', kind: 'energy', currentPerMinute: 24, baselinePerMinute: 6, messages: 500, ageMs: 600_000 }, [6])).toBeUndefined()
  })
  it('holds every device, warm or cold, to its kind\'s ceiling', () => {
    const ceiling = policySchema.parse({ id: 'rate-burst', severity: 'medium', params: { ceilingPerMinute: { flood: 120 } } }) as PolicyOf<'rate-burst'>
    const cold = { deviceId: 'f-1', kind: 'flood' as const, currentPerMinute: 180, baselinePerMinute: undefined, messages: 3, ageMs: 3_000 }
    expect(rateBurstRule(ceiling, cold, [])?.evidence).toMatchObject({ judgedOn: 'ceiling', ceilingPerMinute: 120 })
    // A warm device whose whole site changed is still over the ceiling.
    expect(rateBurstRule(ceiling, { ...cold, baselinePerMinute: 170, messages: 500, ageMs: 600_000 }, [180, 180, 180, 180])?.evidence).toMatchObject({ judgedOn: 'ceiling' })
    expect(rateBurstRule(ceiling, { ...cold, currentPerMinute: 120 }, [])).toBeUndefined()
    // Without a ceiling in the file: what the broker's default budget lets through (50 + 5/s over 10 s).
    expect(rateBurstRule(rule, { ...cold, kind: 'energy', currentPerMinute: 600 }, [])).toBeUndefined()
    expect(rateBurstRule(rule, { ...cold, kind: 'energy', currentPerMinute: 606 }, [])).toBeDefined()
  })
  it('does not trust a baseline learned in the device\'s first seconds, however many messages it holds', () => {
    expect(rateBurstRule(rule, { deviceId: 'e-1', kind: 'energy', currentPerMinute: 240, baselinePerMinute: 6, messages: 500, ageMs: 10_000 }, [])).toBeUndefined()
  })
  it('takes the broker\'s throttling as evidence before the device is warm', () => {
    const throttled = event({ type: 'rate-limited', deviceId: 'e-1', reason: 'publishing faster than 5/s (burst 50); reads slowed', details: { ratePerSec: 5, burst: 50 } })
    expect(brokerThrottleRule(rule, throttled, false, 60)?.evidence).toMatchObject({ judgedOn: 'broker throttling', brokerRatePerSec: 5, messages: 60 })
    expect(brokerThrottleRule(rule, throttled, true, 600)).toBeUndefined()
    const cutOff = event({ type: 'rate-limited', deviceId: 'e-1', reason: 'publishing so far beyond 5/s that a message would wait over 30000 ms; disconnected', details: { ratePerSec: 5, burst: 50, disconnected: true } })
    expect(brokerThrottleRule(rule, cutOff, true, 600)?.evidence).toMatchObject({ judgedOn: 'broker throttling', disconnected: true })
  })
})

describe('device-silent', () => {
  const rule = policySchema.parse({ id: 'device-silent', severity: 'medium', params: { missedIntervals: 3, expectedInterval: { flood: '10s' }, warmupMessages: 5 } }) as PolicyOf<'device-silent'>
  const facts = { deviceId: 'f-1', kind: 'flood' as const, lastSeenMs: 0, learnedIntervalMs: undefined, messages: 50 }
  it('uses the configured interval until the device has one of its own', () => {
    expect(deviceSilentRule(rule, facts, 30_000)).toBeUndefined()
    expect(deviceSilentRule(rule, facts, 30_001)?.evidence).toMatchObject({ expectedIntervalMs: 10_000, missedIntervals: 3 })
    expect(deviceSilentRule(rule, { ...facts, learnedIntervalMs: 60_000 }, 100_000)).toBeUndefined()
    expect(deviceSilentRule(rule, { ...facts, learnedIntervalMs: 60_000 }, 180_001)).toBeDefined()
  })
  it('says durations in the unit that fits', () => {
    expect(deviceSilentRule(rule, { ...facts, learnedIntervalMs: 200 }, 3_000)?.summary).toBe('silent for 3 s, expected a message every 200 ms')
    expect(deviceSilentRule(rule, { ...facts, learnedIntervalMs: 90_000 }, 600_000)?.summary).toBe('silent for 10 min, expected a message every 1.5 min')
    // A baseline learned from a flood: never "every 0 s" (or "0 ms").
    expect(deviceSilentRule(rule, { ...facts, learnedIntervalMs: 0.4 }, 12_000)?.summary).toBe('silent for 12 s, expected a message every <1 ms')
  })
  it('does not count the time PlaceGuard itself was behind as the device\'s silence', () => {
    expect(deviceSilentRule(rule, { ...facts, deafMs: 25_000 }, 55_000)).toBeUndefined()
    expect(deviceSilentRule(rule, { ...facts, deafMs: 25_000 }, 55_001)?.summary).toBe('silent for 55 s, expected a message every 10 s')
  })
  it('judges a device not yet warm on the longer of its kind\'s interval and the one it has shown', () => {
    // Three messages 1 s apart, then nothing: a new sensor failing early is silent too; its 1 s is not trusted yet, the kind's 10 s is.
    const young = { ...facts, messages: 3, learnedIntervalMs: 1_000 }
    expect(deviceSilentRule(rule, young, 30_000)).toBeUndefined()
    expect(deviceSilentRule(rule, young, 30_001)?.evidence).toMatchObject({ expectedIntervalMs: 10_000 })
    // A device slower than its kind's setting keeps its own pace while young: 60 s shown, not 10 s.
    expect(deviceSilentRule(rule, { ...young, learnedIntervalMs: 60_000 }, 179_999)).toBeUndefined()
    expect(deviceSilentRule(rule, { ...young, learnedIntervalMs: 60_000 }, 180_001)?.evidence).toMatchObject({ expectedIntervalMs: 60_000 })
    // Warm, its own 1 s holds (above the floor of what PlaceGuard's delays could cause).
    expect(deviceSilentRule(rule, { ...young, messages: 5, minSilenceMs: 5_000 }, 5_001)?.evidence).toMatchObject({ expectedIntervalMs: 1_000 })
  })
  it('leaves a device with one message, and an unconfigured kind before warm, alone', () => {
    // One message shows no interval: nothing to hold it to, whatever the kind says.
    expect(deviceSilentRule(rule, { ...facts, messages: 1 }, 1e9)).toBeUndefined()
    expect(deviceSilentRule(rule, { ...facts, kind: 'energy' }, 1e9)).toBeUndefined()
    expect(deviceSilentRule(rule, { ...facts, kind: 'energy', messages: 3, learnedIntervalMs: 1_000 }, 1e9)).toBeUndefined()
  })
})
