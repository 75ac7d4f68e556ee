/**
 * A device's learned state leaves one engine and enters another (a
 * partition moving between collectors): round trip, no false finding after
 * the move, history carried (an older seq is a replay, an older firmware a
 * downgrade, a redelivered message is set aside), silence counted from the
 * import, windows carried, bad snapshots ignored with a reason, forgetting.
 */
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import type { SecurityEvent } from '../../broker/index.ts'
import { loadPolicyDirectory, PolicyEngine, type TelemetryObservation } from '../../policies/index.ts'

const shipped = loadPolicyDirectory(join(import.meta.dirname, '..', '..', 'policies')).map((l) => l.policy)
const START = Date.parse('2026-12-01T12:00:00Z')
const INTERVAL = 10_000

function clockAt (start: number) {
  const clock = { ms: start, now: () => clock.ms }
  return clock
}
const reading = (deviceId: string, seq: number, at: number, fw = '3.2.1'): TelemetryObservation =>
  ({ deviceId, kind: 'flood', site: 'riverside', ts: at, seq, fw, readings: { level_cm: 80 + seq % 3, battery_v: 3.5 }, receivedAtMs: at })

/** Two engines on one clock; `a` has heard `devices` every 10 s for 30 messages (warm: interval and rate baselines learned). */
function learned (devices: string[]) {
  const clock = clockAt(START)
  const a = new PolicyEngine(shipped, clock)
  const b = new PolicyEngine(shipped, clock)
  for (let seq = 1; seq <= 30; seq++) {
    for (const id of devices) expect(a.onTelemetry(reading(id, seq, clock.ms)).findings).toEqual([])
    clock.ms += INTERVAL
  }
  clock.ms -= INTERVAL // now = the last message's time
  expect(a.tick().findings).toEqual([])
  return { clock, a, b }
}
const policiesOf = (verdict: { findings: Array<{ policy: string, deviceId: string }> }) => verdict.findings.map((f) => `${f.policy} ${f.deviceId}`)
const connect = (deviceId: string): SecurityEvent => ({ type: 'connect', at: '', reason: 'connected', deviceId })

describe('device state snapshots', () => {
  it('round-trips: what one engine exports, another imports and exports the same', () => {
    const { clock, a, b } = learned(['flood-1', 'flood-2', 'flood-3'])
    for (let i = 0; i < 3; i++) a.onSecurityEvent(connect('flood-1'))
    a.onSecurityEvent({ type: 'tls-rejected', at: '', reason: 'unknown CA', remoteAddress: '10.0.0.9:5000', claimedId: 'flood-1' })
    const picked = (id: string) => id !== 'flood-3'
    const snapshot = a.exportDevices(picked)
    expect(snapshot.version).toBe(2)
    expect(snapshot.devices.map((d) => d.deviceId)).toEqual(['flood-1', 'flood-2'])
    expect(snapshot.devices[0]).toMatchObject({ kind: 'flood', site: 'riverside', messages: 30, previous: { seq: 30, fw: '3.2.1' }, intervalMs: INTERVAL })
    expect(snapshot.devices[0]!.seen).toHaveLength(16)
    // The flapping window of flood-1 travels; the one keyed by the source address of a rejected certificate is no device's.
    expect(snapshot.windows.map((w) => `${w.policy} ${w.key} ${w.times.length}`)).toEqual(['connection-flapping flood-1 3'])
    const json = JSON.parse(JSON.stringify(snapshot)) as unknown
    expect(b.importDevices(json)).toEqual({ devices: 2, windows: 1 })
    expect(b.deviceCount).toBe(2)
    expect(b.exportDevices(() => true)).toEqual(snapshot)
    expect(b.rateOf('flood-1')).toEqual(a.rateOf('flood-1'))
    clock.ms += 1
    expect(b.exportDevices(picked).takenAtMs).toBe(clock.ms)
  })

  it('lets an imported device go on without a false replay, downgrade, silence or burst, after a 45 s move', () => {
    const { clock, a, b } = learned(['flood-1', 'flood-2', 'flood-3'])
    const snapshot = a.exportDevices(() => true)
    // The partition changes hands: 45 s in which nobody read it, longer than 3 × the 10 s interval.
    clock.ms += 45_000
    b.importDevices(snapshot)
    expect(b.tick().findings).toEqual([])
    // What waited in the stream (seq 31..34) arrives at once, then live messages go on.
    for (const id of ['flood-1', 'flood-2', 'flood-3']) {
      for (let seq = 31; seq <= 34; seq++) expect(policiesOf(b.onTelemetry(reading(id, seq, clock.ms - (35 - seq) * INTERVAL + 5_000)))).toEqual([])
    }
    for (let seq = 35; seq <= 40; seq++) {
      clock.ms += INTERVAL
      for (const id of ['flood-1', 'flood-2', 'flood-3']) expect(policiesOf(b.onTelemetry(reading(id, seq, clock.ms)))).toEqual([])
      expect(policiesOf(b.tick())).toEqual([])
    }
    // The baseline learned before the move still holds: about one message every 10 s.
    expect(b.rateOf('flood-1')!.baselinePerMinute).toBeGreaterThan(4)
    expect(b.rateOf('flood-1')!.baselinePerMinute).toBeLessThan(8)
    expect(b.rateOf('flood-1')!.messages).toBe(40)
  })

  it('carries history: after the move an older seq is a replay and an older firmware a downgrade; a fresh engine could not tell', () => {
    const { clock, a, b } = learned(['flood-1', 'flood-2'])
    const fresh = new PolicyEngine(shipped, clock)
    const snapshot = a.exportDevices(() => true)
    clock.ms += 5_000
    b.importDevices(snapshot)
    const replayed = reading('flood-1', 12, clock.ms)
    const downgraded = reading('flood-2', 31, clock.ms, '3.1.0')
    expect(policiesOf(b.onTelemetry(replayed))).toEqual(['replay flood-1'])
    expect(policiesOf(b.onTelemetry(downgraded))).toEqual(['firmware-downgrade flood-2'])
    expect(policiesOf(fresh.onTelemetry(replayed))).toEqual([])
    expect(policiesOf(fresh.onTelemetry(downgraded))).toEqual([])
  })

  it('sets aside a message the previous holder had already heard (its unacknowledged batch, read again)', () => {
    const { clock, a, b } = learned(['flood-1'])
    const last = reading('flood-1', 30, clock.ms)
    clock.ms += 12_000
    b.importDevices(a.exportDevices(() => true))
    expect(b.onTelemetry({ ...last, receivedAtMs: clock.ms })).toEqual({ findings: [], clears: [] })
    expect(b.redeliveries).toBe(1)
  })

  it('counts silence from the import: a device that stays silent after the move is judged again, on its learned interval', () => {
    const { clock, a, b } = learned(['flood-1'])
    const snapshot = a.exportDevices(() => true)
    clock.ms += 60_000 // already silent for 60 s when the partition moves
    b.importDevices(snapshot)
    expect(b.tick().findings).toEqual([])
    clock.ms += 29_000
    expect(b.tick().findings).toEqual([])
    clock.ms += 2_000 // 31 s since the import: over 3 × 10 s
    const [finding] = b.tick().findings
    expect(finding).toMatchObject({ policy: 'device-silent', deviceId: 'flood-1', evidence: { expectedIntervalMs: INTERVAL, lastSeen: new Date(START + 29 * INTERVAL).toISOString() } })
  })

  it('carries the security-event windows of the devices', () => {
    const { clock, a, b } = learned(['flood-1'])
    for (let i = 0; i < 4; i++) { clock.ms += 1_000; expect(a.onSecurityEvent(connect('flood-1')).findings).toEqual([]) }
    b.importDevices(a.exportDevices((id) => id === 'flood-1'))
    clock.ms += 1_000
    expect(policiesOf(b.onSecurityEvent(connect('flood-1')))).toEqual(['connection-flapping flood-1'])
  })

  it('ignores a snapshot of another version or that does not validate, with the reason, and changes nothing', () => {
    const { a, b } = learned(['flood-1'])
    const good = a.exportDevices(() => true)
    const cases: Array<[unknown, RegExp]> = [
      [{ ...good, version: 3 }, /version 3 is not a version this engine reads \(1, 2\)/],
      [{ ...good, version: '1' }, /version string/],
      [null, /no version/],
      ['{"version":1}', /no version/],
      [{ ...good, devices: [{ ...good.devices[0], previous: { seq: -1, ts: 0, fw: '1.0.0', readings: {} } }] }, /devices\.0\.previous\.seq/],
      [{ ...good, devices: [{ ...good.devices[0], deviceId: 'places/#' }] }, /devices\.0\.deviceId/],
      [{ ...good, devices: [{ ...good.devices[0], lastHeardMs: null }] }, /devices\.0\.lastHeardMs/],
      [{ ...good, extra: true }, /extra/],
    ]
    for (const [snapshot, reason] of cases) {
      const result = b.importDevices(snapshot)
      expect(result.devices).toBe(0)
      expect(result.ignored).toMatch(reason)
    }
    expect(b.deviceCount).toBe(0)
  })

  it('still reads a version 1 snapshot (before LoRaWAN state travelled): its devices keep their history', () => {
    const { clock, a, b } = learned(['flood-1'])
    const { lorawan, ...v1 } = { ...a.exportDevices(() => true), version: 1 }
    expect(lorawan).toEqual([])
    expect(b.importDevices(v1)).toEqual({ devices: 1, windows: 0 })
    expect(policiesOf(b.onTelemetry(reading('flood-1', 12, clock.ms + 1_000)))).toEqual(['replay flood-1'])
  })

  it('keeps its own state where it heard the device more recently than the snapshot', () => {
    const { clock, a, b } = learned(['flood-1'])
    const old = a.exportDevices(() => true)
    clock.ms += INTERVAL
    b.onTelemetry(reading('flood-1', 31, clock.ms))
    expect(b.importDevices(old)).toEqual({ devices: 0, windows: 0 })
    expect(b.rateOf('flood-1')!.messages).toBe(1)
  })

  it('forgets the devices (and their windows) a partition took away: no silence alert for them here', () => {
    const { clock, a } = learned(['flood-1', 'flood-2'])
    a.onSecurityEvent(connect('flood-1'))
    expect(a.forgetDevices((id) => id === 'flood-1')).toBe(1)
    expect(a.deviceCount).toBe(1)
    expect(a.exportDevices(() => true).windows).toEqual([])
    clock.ms += 60_000
    expect(policiesOf(a.tick())).toEqual(['device-silent flood-2'])
  })
})
