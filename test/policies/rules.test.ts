import { describe, expect, it } from 'vitest'
import { certExpiryRule } from '../../policies/rules/cert-expiry.ts'
import { clockSkewRule } from '../../policies/rules/clock-skew.ts'
import { firmwareDowngradeRule } from '../../policies/rules/firmware-downgrade.ts'
import { firmwareOutdatedRule } from '../../policies/rules/firmware-outdated.ts'
import { firmwareVulnerableRule } from '../../policies/rules/firmware-vulnerable.ts'
import { policySchema, type PolicyOf } from '../../policies/schema.ts'
import { replayRule } from '../../policies/rules/replay.ts'
import { type TelemetryObservation } from '../../policies/index.ts'
import { valueImplausibleRule } from '../../policies/rules/value-implausible.ts'

const DAY = 86_400_000
const NOW = Date.parse('2026-11-23T12:00:00Z')
function policy<I extends PolicyOf<never>['id'] | string> (value: Record<string, unknown> & { id: I }) {
  return policySchema.parse({ severity: 'medium', ...value }) as never
}
const observe = (overrides: Partial<TelemetryObservation> = {}): TelemetryObservation => ({
  deviceId: 'flood-1', kind: 'flood', site: 'riverside', ts: NOW, seq: 10, fw: '3.2.1', readings: { level_cm: 80, battery_v: 3.5 }, receivedAtMs: NOW, ...overrides,
})

describe('cert-expiry', () => {
  const rule = policy({ id: 'cert-expiry', params: { warnDays: 30, criticalDays: 7 } })
  const cert = (days: number) => ({ deviceId: 'flood-1', serial: 'ab', notAfter: new Date(NOW + days * DAY).toISOString() })
  it.each([[31, undefined], [30, 'medium'], [8, 'medium'], [7, 'critical'], [0.5, 'critical'], [-1, undefined]])('%s days left → %s', (days, severity) => {
    expect(certExpiryRule(rule, cert(days), NOW)?.severity).toBe(severity)
  })
  it('names the certificate and the days left', () => {
    expect(certExpiryRule(rule, cert(5), NOW)).toMatchObject({ evidence: { serial: 'ab', daysLeft: 5, criticalDays: 7 }, summary: expect.stringContaining('expires in 5.0 days') })
  })
})

describe('firmware rules', () => {
  const outdated = policy({ id: 'firmware-outdated', params: { minimum: { flood: '3.0.0' } } })
  const vulnerable = policy({ id: 'firmware-vulnerable', params: { denylist: [{ kind: 'energy', range: '5.2.0 - 5.2.3', advisory: 'EXAMPLE-1' }] } })
  const downgrade = policy({ id: 'firmware-downgrade' })
  it('compare versions as semver, not as strings', () => {
    expect(firmwareOutdatedRule(outdated, observe({ fw: '2.10.0' }))?.evidence).toMatchObject({ fw: '2.10.0', minimum: '3.0.0' })
    expect(firmwareOutdatedRule(outdated, observe({ fw: '3.0.0' }))).toBeUndefined()
    expect(firmwareOutdatedRule(outdated, observe({ fw: '10.0.0' }))).toBeUndefined()
    expect(firmwareOutdatedRule(outdated, observe({ kind: 'energy', fw: '0.1.0' }))).toBeUndefined() // no minimum for energy
  })
  it('match the denylist by kind and range, with the advisory', () => {
    expect(firmwareVulnerableRule(vulnerable, observe({ kind: 'energy', fw: '5.2.3' }))?.summary).toContain('EXAMPLE-1')
    expect(firmwareVulnerableRule(vulnerable, observe({ kind: 'energy', fw: '5.2.4' }))).toBeUndefined()
    expect(firmwareVulnerableRule(vulnerable, observe({ kind: 'flood', fw: '5.2.1' }))).toBeUndefined()
  })
  it('see a downgrade against the previous message only', () => {
    const previous = { seq: 9, ts: NOW - 1000, fw: '3.2.1', readings: {} }
    expect(firmwareDowngradeRule(downgrade, observe({ fw: '3.1.9' }), previous)?.evidence).toEqual({ from: '3.2.1', to: '3.1.9' })
    expect(firmwareDowngradeRule(downgrade, observe({ fw: '3.2.1' }), previous)).toBeUndefined()
    expect(firmwareDowngradeRule(downgrade, observe({ fw: '3.3.0' }), previous)).toBeUndefined()
    expect(firmwareDowngradeRule(downgrade, observe({ fw: '1.0.0' }), undefined)).toBeUndefined()
  })
})

describe('value-implausible', () => {
  const rule = policy({ id: 'value-implausible', params: { readings: { flood: { level_cm: { min: 0, max: 1500, maxStep: 200 } }, energy: { energy_kwh: { min: 0, monotonic: true } } } } })
  const previous = (readings: Record<string, number>) => ({ seq: 9, ts: NOW - 10_000, fw: '3.2.1', readings })
  it.each([
    [{ level_cm: -1 }, undefined, 'level_cm -1 is below 0'],
    [{ level_cm: 1501 }, undefined, 'level_cm 1501 is above 1500'],
    [{ level_cm: 300 }, { level_cm: 80 }, 'level_cm jumped from 80 to 300 (more than 200)'],
  ])('flood %o after %o → %s', (readings, before, summary) => {
    expect(valueImplausibleRule(rule, observe({ readings }), before && previous(before))?.summary).toBe(summary)
  })
  it('accepts readings at the bounds and steps of exactly maxStep', () => {
    expect(valueImplausibleRule(rule, observe({ readings: { level_cm: 0 } }), previous({ level_cm: 200 }))).toBeUndefined()
    expect(valueImplausibleRule(rule, observe({ readings: { level_cm: 1500 } }), undefined)).toBeUndefined()
  })
  it('catches a meter running backwards, not one standing still', () => {
    const meter = (value: number) => observe({ kind: 'energy', readings: { energy_kwh: value } })
    expect(valueImplausibleRule(rule, meter(999.9), previous({ energy_kwh: 1000 }))?.summary).toBe('energy_kwh went backwards from 1000 to 999.9')
    expect(valueImplausibleRule(rule, meter(1000), previous({ energy_kwh: 1000 }))).toBeUndefined()
  })
})

describe('clock-skew and replay', () => {
  const skew = policy({ id: 'clock-skew', params: { maxSkew: '5m' } })
  const replay = policy({ id: 'replay' })
  it('flags a clock more than maxSkew ahead or behind', () => {
    expect(clockSkewRule(skew, observe({ ts: NOW + 300_000 }))).toBeUndefined()
    expect(clockSkewRule(skew, observe({ ts: NOW + 300_001 }))?.summary).toBe('device clock is 300 s ahead (limit 300 s)')
    expect(clockSkewRule(skew, observe({ ts: NOW - 3_600_000 }))?.evidence.skewMs).toBe(-3_600_000)
  })
  it('flags a repeated or backwards seq, but not a reboot', () => {
    const previous = { seq: 10, ts: NOW - 1000, fw: '3.2.1', readings: {} }
    expect(replayRule(replay, observe({ seq: 10 }), previous)?.summary).toBe('seq 10 repeated')
    expect(replayRule(replay, observe({ seq: 4 }), previous)?.summary).toBe('seq went back from 10 to 4')
    expect(replayRule(replay, observe({ seq: 0, ts: NOW }), previous)).toBeUndefined() // rebooted
    expect(replayRule(replay, observe({ seq: 0, ts: NOW - 5000 }), previous)).toBeDefined() // an old message again
    expect(replayRule(replay, observe({ seq: 11 }), previous)).toBeUndefined()
  })
  it('with the device\'s lag known, a reboot is a message sent after the previous one and not in the future, by its clock as it was or as set right', () => {
    // Its clock ran 20 min ahead (lag −20 min); its last message, seq 10, was sent 30 s ago.
    const lag = -20 * 60_000
    const previous = { seq: 10, ts: NOW - 30_000 - lag, fw: '3.2.1', readings: {} }
    expect(replayRule(replay, observe({ seq: 0, ts: NOW - lag }), previous, lag)).toBeUndefined() // rebooted, clock still ahead
    expect(replayRule(replay, observe({ seq: 0, ts: NOW - 50 }), previous, lag)).toBeUndefined() // rebooted, clock set right
    expect(replayRule(replay, observe({ seq: 1, ts: NOW - 50 }), previous, lag)).toBeUndefined()
    expect(replayRule(replay, observe({ seq: 2, ts: NOW - 50 }), previous, lag)).toBeDefined() // no reboot starts at 2
    // Seq 0 of its boot ten minutes ago, sent again: before the previous message by its clock, ahead of now by ours.
    expect(replayRule(replay, observe({ seq: 0, ts: NOW - 600_000 - lag }), previous, lag)?.summary).toBe('seq went back from 10 to 0')
    // A later ts alone is not enough once the lag is known: this one claims to be sent 15 min from now.
    expect(replayRule(replay, observe({ seq: 0, ts: NOW + 15 * 60_000 }), { ...previous, ts: NOW - 30_000 }, 0)).toBeDefined()
    expect(replayRule(replay, observe({ seq: 0, ts: NOW + 15 * 60_000 }), { ...previous, ts: NOW - 30_000 })).toBeUndefined() // (without a lag it was)
  })
})
