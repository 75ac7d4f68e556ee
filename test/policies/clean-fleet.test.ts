import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { DEFAULT_MIX, planFleet } from '../../agent-sim/index.ts'
import { Random } from '../../agent-sim/random.ts'
import { createReadingModel } from '../../agent-sim/telemetry-models.ts'
import { clockSkewRule } from '../../policies/rules/clock-skew.ts'
import { type Finding, loadPolicyDirectory, type Policy, type TelemetryObservation } from '../../policies/index.ts'
import { firmwareDowngradeRule } from '../../policies/rules/firmware-downgrade.ts'
import { firmwareOutdatedRule } from '../../policies/rules/firmware-outdated.ts'
import { firmwareVulnerableRule } from '../../policies/rules/firmware-vulnerable.ts'
import { type PolicyOf } from '../../policies/schema.ts'
import { type PreviousTelemetry } from '../../policies/finding.ts'
import { replayRule } from '../../policies/rules/replay.ts'
import { valueImplausibleRule } from '../../policies/rules/value-implausible.ts'

const policies = new Map(loadPolicyDirectory(join(import.meta.dirname, '..', '..', 'policies')).map(({ policy }) => [policy.id, policy]))
const get = <I extends Policy['id']>(id: I) => policies.get(id) as PolicyOf<I>

function findings (observation: TelemetryObservation, previous: PreviousTelemetry | undefined): Finding[] {
  return [
    firmwareOutdatedRule(get('firmware-outdated'), observation),
    firmwareVulnerableRule(get('firmware-vulnerable'), observation),
    firmwareDowngradeRule(get('firmware-downgrade'), observation, previous),
    valueImplausibleRule(get('value-implausible'), observation, previous),
    clockSkewRule(get('clock-skew'), observation),
    replayRule(get('replay'), observation, previous),
  ].filter((finding): finding is Finding => finding !== undefined)
}

describe('the shipped policies against the simulator\'s clean fleet', () => {
  it('find nothing in two days of telemetry from 300 well-behaved devices', () => {
    const start = Date.parse('2026-11-23T00:00:00Z')
    const all: Finding[] = []
    for (const device of planFleet(300, DEFAULT_MIX, ['a', 'b', 'c'], 17)) {
      const model = createReadingModel(device.kind, new Random(device.seed))
      let previous: PreviousTelemetry | undefined
      for (let seq = 0; seq < 2 * 24 * 60; seq++) {
        const ts = start + seq * 60_000
        const readings = model.next(ts)
        const observation: TelemetryObservation = { deviceId: device.deviceId, kind: device.kind, site: device.site, ts, seq, fw: device.firmware, readings, receivedAtMs: ts + 40 }
        all.push(...findings(observation, previous))
        previous = { seq, ts, fw: device.firmware, readings }
      }
    }
    expect(all).toEqual([])
  })

  it('find what the attack-mix scenario injects into telemetry', () => {
    const base: TelemetryObservation = { deviceId: 'x', kind: 'flood', site: 'a', ts: 1_000_000, seq: 5, fw: '3.2.1', readings: { level_cm: 90, battery_v: 3.5 }, receivedAtMs: 1_000_000 }
    const previous: PreviousTelemetry = { seq: 4, ts: 990_000, fw: '3.2.1', readings: { level_cm: 90, battery_v: 3.5 } }
    const policiesOf = (observation: TelemetryObservation, before = previous) => findings(observation, before).map((f) => f.policy)
    expect(policiesOf({ ...base, fw: '2.9.0' })).toContain('firmware-outdated')
    expect(policiesOf({ ...base, kind: 'energy', fw: '5.2.2', readings: {} }, undefined)).toEqual(['firmware-vulnerable'])
    expect(policiesOf({ ...base, kind: 'housing', fw: '1.7.0', readings: {} }, { ...previous, fw: '1.8.3', readings: {} })).toEqual(['firmware-downgrade'])
    expect(policiesOf({ ...base, readings: { level_cm: 690, battery_v: 3.5 } })).toEqual(['value-implausible'])
    expect(policiesOf({ ...base, ts: base.receivedAtMs + 20 * 60_000 })).toEqual(['clock-skew'])
    expect(policiesOf({ ...base, seq: 4, ts: 990_000 })).toEqual(['replay'])
  })
})
