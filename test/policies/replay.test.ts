import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { isRedelivery, fingerprintOf, REDELIVERY_HORIZON_MS } from '../../policies/rules/replay.ts'
import { loadPolicyDirectory, PolicyEngine, type TelemetryObservation } from '../../policies/index.ts'

const shipped = loadPolicyDirectory(join(import.meta.dirname, '..', '..', 'policies')).map((l) => l.policy)
const T0 = Date.parse('2026-11-23T12:00:00Z')
const message = (seq: number, fields: Partial<TelemetryObservation> = {}): TelemetryObservation =>
  ({ deviceId: 'flood-1', kind: 'flood', site: 'riverside', ts: T0 + seq * 10_000, seq, fw: '3.2.1', readings: { level_cm: 80 + seq, battery_v: 3.5 }, receivedAtMs: T0 + seq * 10_000, ...fields })

describe('isRedelivery (pure)', () => {
  const seen = [1, 2, 3].map((seq) => fingerprintOf(message(seq)))
  it('is the same seq, ts and content seen within the horizon, in or out of order', () => {
    expect(isRedelivery(message(3, { receivedAtMs: T0 + 60_000 }), seen)).toBe(true)
    expect(isRedelivery(message(2, { receivedAtMs: T0 + 60_000 }), seen)).toBe(true)
  })
  it('is not a copy with another ts or other readings, an unseen seq, or a copy past the horizon', () => {
    expect(isRedelivery(message(3, { ts: T0 + 99_000 }), seen)).toBe(false)
    expect(isRedelivery(message(3, { readings: { level_cm: 500, battery_v: 3.5 } }), seen)).toBe(false)
    expect(isRedelivery(message(3, { fw: '3.2.0' }), seen)).toBe(false)
    expect(isRedelivery(message(0), seen)).toBe(false)
    expect(isRedelivery(message(3, { receivedAtMs: T0 + 30_000 + REDELIVERY_HORIZON_MS + 1 }), seen)).toBe(false)
  })
})

describe('PolicyEngine under QoS 1 redelivery (issue 5)', () => {
  function feed () {
    const clock = { ms: T0, now: () => clock.ms }
    const engine = new PolicyEngine(shipped, clock)
    const send = (o: TelemetryObservation) => { clock.ms = o.receivedAtMs; return engine.onTelemetry(o).findings.map((f) => f.policy) }
    for (let seq = 1; seq <= 5; seq++) expect(send(message(seq))).toEqual([])
    return { engine, send, clock }
  }

  it('raises nothing and counts nothing twice when the broker resends a batch', () => {
    const { engine, send } = feed()
    const before = engine.rateOf('flood-1')!.messages
    for (const seq of [3, 4, 5]) expect(send(message(seq, { receivedAtMs: T0 + 55_000 }))).toEqual([])
    expect(engine.rateOf('flood-1')!.messages).toBe(before)
    expect(engine.redeliveries).toBe(3)
    expect(send(message(6))).toEqual([]) // and the stream goes on as before
  })

  it('still alerts on a true replay: an old seq with other content or ts, or an identical copy long after', () => {
    expect(feed().send(message(5, { ts: T0 + 51_000, receivedAtMs: T0 + 55_000 }))).toEqual(['replay'])
    expect(feed().send(message(3, { readings: { level_cm: 83, battery_v: 3.4 }, receivedAtMs: T0 + 55_000 }))).toEqual(['replay'])
    expect(feed().send(message(4, { receivedAtMs: T0 + 40_000 + REDELIVERY_HORIZON_MS + 1 }))).toContain('replay')
  })
})
