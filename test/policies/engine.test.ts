import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import type { SecurityEvent } from '../../broker/index.ts'
import { AlertBook } from '../../detection/alert-book.ts'
import { type Finding, loadPolicyDirectory, PolicyEngine, type TelemetryObservation } from '../../policies/index.ts'
import { policySchema } from '../../policies/schema.ts'

const shipped = loadPolicyDirectory(join(import.meta.dirname, '..', '..', 'policies')).map((l) => l.policy)
function clockAt (start: number) {
  const clock = { ms: start, now: () => clock.ms }
  return clock
}
const reading = (deviceId: string, seq: number, at: number, fw = '3.2.1', level = 80): TelemetryObservation =>
  ({ deviceId, kind: 'flood', site: 'riverside', ts: at, seq, fw, readings: { level_cm: level, battery_v: 3.5 }, receivedAtMs: at })

interface PacedRun {
  ids: string[]
  seconds: number
  /** What device `id` sends as its `seq`-th message at `ms`. */
  observe: (id: string, seq: number, ms: number) => TelemetryObservation
  /** How long device `id` waits after a message sent `sinceMs` into the run; undefined: it stops. */
  every: (id: string, sinceMs: number) => number | undefined
  /** The i-th device's first message comes `staggerMs` × i in. */
  staggerMs: number
  stepMs?: number
  tickMs?: number
  /** Before the first step, and at each step before the devices send. */
  prepare?: (engine: PolicyEngine, t0: number) => void
  onStep?: (engine: PolicyEngine, sinceMs: number) => void
  /** How a finding is named in the result. */
  name?: (finding: Finding) => string
}

/** A fleet fed to a fresh engine on its own pace, ticked as the collector ticks it: each finding named once, with when it first came (ms in). */
function pacedRun (run: PacedRun): Map<string, number> {
  const { stepMs = 50, tickMs = 1_000, name = (f: Finding) => `${f.policy} ${f.deviceId}` } = run
  const clock = clockAt(Date.parse('2026-11-23T12:00:00Z'))
  const t0 = clock.ms
  const engine = new PolicyEngine(shipped, clock)
  run.prepare?.(engine, t0)
  const next = new Map(run.ids.map((id, i) => [id, t0 + run.staggerMs * i]))
  const seqs = new Map(run.ids.map((id) => [id, 0]))
  const found = new Map<string, number>()
  for (let ms = t0; ms < t0 + run.seconds * 1_000; ms += stepMs) {
    clock.ms = ms
    run.onStep?.(engine, ms - t0)
    for (const id of run.ids) {
      if (ms < next.get(id)!) continue
      const seq = seqs.get(id)!
      seqs.set(id, seq + 1)
      engine.onTelemetry(run.observe(id, seq, ms))
      const every = run.every(id, ms - t0)
      next.set(id, every === undefined ? Infinity : ms + every)
    }
    if ((ms - t0) % tickMs === 0) for (const f of engine.tick().findings) if (!found.has(name(f))) found.set(name(f), ms - t0)
  }
  return found
}

describe('PolicyEngine with the shipped policies', () => {
  it('opens one alert per (policy, device), folds repeats into it, and auto-resolves when the condition clears', async () => {
    const clock = clockAt(Date.parse('2026-11-23T12:00:00Z'))
    const engine = new PolicyEngine(shipped, clock)
    const book = new AlertBook({ clock })
    const feed = async (o: TelemetryObservation) => {
      const verdict = engine.onTelemetry(o)
      return [...await Promise.all(verdict.findings.map(async (f) => await book.raise(f, o))), ...(await Promise.all(verdict.clears.map(async (c) => await book.clear(c)))).flatMap((c) => c ?? [])]
    }
    expect((await feed(reading('flood-1', 0, clock.ms, '2.9.0'))).map((c) => `${c.change} ${c.alert.policy}`)).toEqual(['opened firmware-outdated'])
    clock.ms += 10_000
    expect((await feed(reading('flood-1', 1, clock.ms, '2.9.0'))).map((c) => `${c.change} ${c.alert.policy}`)).toEqual(['updated firmware-outdated'])
    clock.ms += 10_000
    // Updated firmware: the alert resolves by itself; the downgrade rule sees nothing wrong in going up.
    expect((await feed(reading('flood-1', 2, clock.ms, '3.2.1'))).map((c) => `${c.change} ${c.alert.policy}`)).toEqual(['resolved firmware-outdated'])
    const [alert] = (await book.list({ policy: 'firmware-outdated' }))
    expect(alert).toMatchObject({ status: 'resolved', occurrences: 2, stride: 'Tampering', attack: 'T0866 Exploitation of Remote Services', site: 'riverside', kind: 'flood' })
    expect(alert!.resolution).toMatch(/^auto: /)
  })

  it('raises device-silent from tick() after the learned interval, and clears it when the device speaks', async () => {
    const clock = clockAt(0)
    const engine = new PolicyEngine(shipped, clock)
    for (let seq = 0; seq < 10; seq++) {
      engine.onTelemetry(reading('flood-2', seq, clock.ms))
      clock.ms += 10_000
    }
    expect(engine.tick().findings).toEqual([])
    clock.ms += 25_000 // 35 s since the last message, 3 × 10 s expected
    expect(engine.tick().findings.map((f) => f.policy)).toEqual(['device-silent'])
    expect(engine.onTelemetry(reading('flood-2', 10, clock.ms)).clears.map((c) => c.policy)).toContain('device-silent')
  })

  it('counts a device that sends only invalid payloads as heard: payload-invalid, not device-silent as well', async () => {
    const clock = clockAt(0)
    const engine = new PolicyEngine(shipped, clock)
    for (let seq = 0; seq < 10; seq++) {
      engine.onTelemetry(reading('flood-3', seq, clock.ms))
      clock.ms += 10_000
    }
    const invalid = (deviceId: string): SecurityEvent =>
      ({ type: 'payload-invalid', at: new Date(clock.ms).toISOString(), reason: 'invalid telemetry: not JSON', deviceId, topic: `places/riverside/flood/${deviceId}/telemetry`, site: 'riverside', kind: 'flood' })
    // Its firmware breaks: every 10 s a message that does not decode, for a minute.
    const raised: string[] = []
    for (let i = 0; i < 6; i++) {
      raised.push(...engine.onSecurityEvent(invalid('flood-3')).findings.map((f) => f.policy))
      clock.ms += 10_000
      raised.push(...engine.tick().findings.map((f) => f.policy))
    }
    expect(new Set(raised)).toEqual(new Set(['payload-invalid'])) // each one folds into the same alert
    // Then it stops altogether: silent, counted from its last message of any kind.
    clock.ms += 25_000
    expect(engine.tick().findings.map((f) => `${f.policy} ${f.evidence.silentMs}`)).toEqual(['device-silent 35000'])
    // A message that does not decode is the device speaking again, too.
    expect(engine.onSecurityEvent(invalid('flood-3')).clears).toEqual([expect.objectContaining({ policy: 'device-silent', deviceId: 'flood-3' })])
    // A device never heard with a valid message is not known, and an invalid one does not enrol it.
    engine.onSecurityEvent(invalid('flood-unknown'))
    clock.ms += 600_000
    expect(engine.tick().findings.map((f) => f.deviceId)).not.toContain('flood-unknown')
  })

  it('raises device-silent for a new sensor that fails after its third message, on its kind\'s interval', async () => {
    const clock = clockAt(0)
    const engine = new PolicyEngine(shipped, clock)
    // Two sensors installed together, reporting every 2 s: one fails after three messages, the other keeps going.
    const silentAt: Array<[number, string, unknown]> = []
    for (let seq = 0; clock.ms <= 40_000; seq++, clock.ms += 2_000) {
      if (seq < 3) engine.onTelemetry(reading('flood-new', seq, clock.ms))
      engine.onTelemetry(reading('flood-ok', seq, clock.ms))
      for (const f of engine.tick().findings) silentAt.push([clock.ms, f.deviceId!, f.evidence.expectedIntervalMs])
    }
    // Its own 2 s is not yet a history to hold it to; the shipped 10 s for its kind is, three times over: last heard at 4 s.
    expect(silentAt[0]).toEqual([36_000, 'flood-new', 10_000])
    expect(silentAt.filter(([, id]) => id !== 'flood-new')).toEqual([])
  })

  it('takes a flood its client sends again after the broker cut it off for redeliveries, not replays; other readings under an old seq are one', () => {
    const clock = clockAt(0)
    const engine = new PolicyEngine(shipped, clock)
    const sent = Array.from({ length: 300 }, (_, seq) => reading('flood-9', seq, 1_000 + seq))
    for (const message of sent) engine.onTelemetry({ ...message, receivedAtMs: clock.ms += 10 })
    // Cut off at 266: once back, its client sends again what was not acknowledged, from 215, the same bytes.
    clock.ms += 3_000
    const policies: string[] = []
    for (const message of sent.slice(215)) policies.push(...engine.onTelemetry({ ...message, receivedAtMs: clock.ms += 100 }).findings.map((f) => f.policy))
    expect(policies.filter((p) => p === 'replay')).toEqual([])
    // Sending them again took 8.5 s, as slow as the broker let it: the device was not silent meanwhile.
    expect(engine.tick().findings.map((f) => f.policy)).not.toContain('device-silent')
    // The same seq and ts with another reading is no redelivery.
    const forged = reading('flood-9', 220, 1_220, '3.2.1', 95)
    expect(engine.onTelemetry({ ...forged, receivedAtMs: clock.ms += 10 }).findings.map((f) => f.policy)).toContain('replay')
    // A minute and a few messages on, the burst's fingerprints are let go (16 are kept): the same bytes again are a replay.
    clock.ms += 60_000
    for (let seq = 300; seq < 305; seq++) engine.onTelemetry({ ...reading('flood-9', seq, clock.ms), receivedAtMs: clock.ms += 1_000 })
    expect(engine.onTelemetry({ ...sent[230]!, receivedAtMs: clock.ms += 10 }).findings.map((f) => f.policy)).toContain('replay')
  })

  it('counts a device the broker throttles as heard: sending over its budget is not silence', () => {
    const clock = clockAt(0)
    const engine = new PolicyEngine(shipped, clock)
    for (let seq = 0; seq < 10; seq++, clock.ms += 1_000) engine.onTelemetry(reading('flood-t', seq, clock.ms))
    // Its messages held by the broker: none has reached the collector for 4 s, but the broker says it is sending.
    clock.ms += 4_000
    engine.onSecurityEvent({ type: 'rate-limited', at: new Date(clock.ms).toISOString(), deviceId: 'flood-t', reason: 'publishing faster than 5/s (burst 50); reads slowed', details: { ratePerSec: 5, burst: 50 } })
    clock.ms += 4_000
    expect(engine.tick().findings.map((f) => f.policy)).not.toContain('device-silent') // 8 s since its last reading, 4 s since the broker's word
    clock.ms += 2_000
    expect(engine.tick().findings.map((f) => f.policy)).toContain('device-silent') // nothing at all for over 5 s
  })

  it('counts security events per identity in their window', async () => {
    const clock = clockAt(0)
    const engine = new PolicyEngine(shipped, clock)
    const connect: SecurityEvent = { type: 'connect', at: '', reason: 'connected', deviceId: 'flood-3' }
    const findings = Array.from({ length: 5 }, () => { clock.ms += 10_000; return engine.onSecurityEvent(connect).findings })
    expect(findings.map((f) => f.length)).toEqual([0, 0, 0, 0, 1])
    expect(findings[4]![0]).toMatchObject({ policy: 'connection-flapping', deviceId: 'flood-3', severity: 'low' })
  })

  it('honours scope and enabled', async () => {
    const scoped = [
      policySchema.parse({ id: 'clock-skew', severity: 'low', scope: { sites: ['harbour'] } }),
      policySchema.parse({ id: 'replay', severity: 'high', enabled: false }),
    ]
    const engine = new PolicyEngine(scoped, clockAt(0))
    expect(engine.onTelemetry({ ...reading('flood-4', 0, 0), ts: 10 * 60_000 }).findings).toEqual([])
    expect(engine.onTelemetry({ ...reading('flood-5', 0, 0), site: 'harbour', ts: 10 * 60_000 }).findings.map((f) => f.policy)).toEqual(['clock-skew'])
    expect(engine.onTelemetry(reading('flood-5', 0, 1)).findings).toEqual([])
  })

  it('flags a burst against its own baseline and its peers, after warm-up', async () => {
    const clock = clockAt(0)
    const engine = new PolicyEngine(shipped, clock)
    const devices = Array.from({ length: 8 }, (_, i) => `flood-p${i}`)
    for (let seq = 0; seq < 30; seq++) {
      for (const id of devices) engine.onTelemetry(reading(id, seq, clock.ms))
      clock.ms += 10_000
    }
    expect(engine.tick().findings).toEqual([])
    for (let i = 0; i < 100; i++) { clock.ms += 200; engine.onTelemetry(reading('flood-p0', 30 + i, clock.ms)) }
    expect(engine.tick().findings.map((f) => `${f.policy} ${f.deviceId}`)).toEqual(['rate-burst flood-p0'])
  })
})

describe('AlertBook', () => {
  it('keeps alerts across a restart and walks the lifecycle', async () => {
    const { mkdtempSync, rmSync } = await import('node:fs')
    const { tmpdir } = await import('node:os')
    const dir = mkdtempSync(join(tmpdir(), 'placeguard-alerts-'))
    try {
      const path = join(dir, 'alerts.db')
      const first = new AlertBook({ path })
      const { alert } = (await first.raise({ policy: 'acl-violation', deviceId: 'f-1', severity: 'high', summary: 's', evidence: { topic: 'x' } }))
      expect((await first.acknowledge(alert.id, 'analyst'))?.alert.status).toBe('acknowledged')
      expect((await first.acknowledge(alert.id, 'analyst'))).toBeUndefined()
      await first.close()
      const second = new AlertBook({ path })
      expect((await second.get(alert.id))).toMatchObject({ status: 'acknowledged', acknowledgedBy: 'analyst', evidence: { topic: 'x' } })
      // Still live: a new finding folds into it rather than opening a second alert.
      expect((await second.raise({ policy: 'acl-violation', deviceId: 'f-1', severity: 'high', summary: 's2', evidence: {} })).change).toBe('updated')
      expect((await second.resolve(alert.id, 'analyst'))?.alert.resolution).toBe('by analyst')
      expect((await second.raise({ policy: 'acl-violation', deviceId: 'f-1', severity: 'high', summary: 's3', evidence: {} })).change).toBe('opened')
      expect((await second.list({ deviceId: 'f-1' }))).toHaveLength(2)
      await second.close()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('PolicyEngine judged on the right clock', () => {
  /** 30 devices at one site, a message every second for a minute; then PlaceGuard stops listening for 20 s and gets the backlog at once. */
  function stalledFleet (tellEngine: boolean) {
    const clock = clockAt(Date.parse('2026-11-23T12:00:00Z'))
    const engine = new PolicyEngine(shipped, clock)
    const ids = Array.from({ length: 30 }, (_, i) => `flood-${i}`)
    let seq = 0
    for (; seq < 60; seq++) {
      for (const id of ids) engine.onTelemetry(reading(id, seq, clock.ms))
      clock.ms += 1_000
      if (seq % 5 === 0) expect(engine.tick().findings).toEqual([])
    }
    const frozenAt = clock.ms
    clock.ms += 20_000
    if (tellEngine) engine.setCatchingUp(true) // the collector's stall monitor, as the first thing after the freeze
    const findings = engine.tick().findings
    for (let sent = frozenAt; sent < clock.ms; sent += 1_000, seq++) {
      for (const id of ids) engine.onTelemetry({ ...reading(id, seq, sent), receivedAtMs: clock.ms })
    }
    findings.push(...engine.tick().findings)
    if (tellEngine) engine.setCatchingUp(false)
    for (let i = 0; i < 10; i++, seq++) {
      clock.ms += 1_000
      for (const id of ids) engine.onTelemetry(reading(id, seq, clock.ms))
      findings.push(...engine.tick().findings)
    }
    return findings
  }

  it('takes a replayed backlog for what it is: no silence, no burst', async () => {
    expect(stalledFleet(true)).toEqual([])
  })

  it('(without knowing it was behind, the same stall looks like a whole fleet gone silent)', async () => {
    expect(stalledFleet(false).filter((f) => f.policy === 'device-silent')).toHaveLength(30)
  })

  it('still sees a burst that happens while it is catching up', async () => {
    const clock = clockAt(0)
    const engine = new PolicyEngine(shipped, clock)
    for (let seq = 0; seq < 30; seq++, clock.ms += 1_000) engine.onTelemetry({ ...reading('energy-1', seq, clock.ms), kind: 'energy', readings: {} })
    engine.setCatchingUp(true)
    for (let seq = 30; seq < 330; seq++) engine.onTelemetry({ ...reading('energy-1', seq, clock.ms), kind: 'energy', readings: {} })
    expect(engine.tick().findings.map((f) => f.evidence.judgedOn)).toEqual(['ceiling'])
  })

  it('answers a broker throttling event with rate-burst for a device still without a baseline', async () => {
    const engine = new PolicyEngine(shipped, clockAt(0))
    engine.onTelemetry({ ...reading('energy-1', 0, 0), kind: 'energy', site: 'harbour', readings: {} })
    const event: SecurityEvent = { type: 'rate-limited', at: '2026-11-23T12:00:00Z', deviceId: 'energy-1', reason: 'publishing faster than 5/s (burst 50); reads slowed', details: { ratePerSec: 5, burst: 50 } }
    expect(engine.onSecurityEvent(event).findings).toMatchObject([{ policy: 'rate-burst', deviceId: 'energy-1', site: 'harbour', kind: 'energy', evidence: { judgedOn: 'broker throttling' } }])
  })

  it('after a restart, a backlog read partly in order before the first live message is no burst', async () => {
    // A fresh engine (the restarted collector) at a site with two energy systems: aedes hands over the first 16
    // of a minute's stored messages in order, then a live one, then the rest of the backlog among live ones.
    const start = Date.parse('2026-11-23T12:00:00Z')
    const clock = clockAt(start)
    const engine = new PolicyEngine(shipped, clock)
    engine.expectReplayUntil(start + 120_000)
    const energy = (id: string, seq: number, sent: number): TelemetryObservation =>
      ({ deviceId: id, kind: 'energy', site: 'tiny', ts: sent, seq, fw: '5.4.0', readings: {}, receivedAtMs: clock.ms })
    const ids = ['energy-a', 'energy-b']
    for (let seq = 0; seq < 16; seq++) for (const id of ids) engine.onTelemetry(energy(id, seq, start - 60_000 + seq * 1_000))
    const findings = []
    for (let live = 60; live < 100; live++) {
      clock.ms = start + (live - 60) * 1_000
      for (const id of ids) {
        engine.onTelemetry(energy(id, live, clock.ms))
        if (live - 44 < 60) engine.onTelemetry(energy(id, live - 44, start - 60_000 + (live - 44) * 1_000))
      }
      findings.push(...engine.tick().findings)
    }
    expect(findings.map((f) => `${f.policy} ${f.deviceId}: ${f.summary}`)).toEqual([])
  })

  it('gives devices not heard since a lost broker its reconnect allowance before their silence counts', () => {
    const clock = clockAt(0)
    const engine = new PolicyEngine(shipped, clock)
    for (let seq = 0; seq < 10; seq++, clock.ms += 1_000) for (const id of ['flood-a', 'flood-b']) engine.onTelemetry(reading(id, seq, clock.ms))
    engine.setCatchingUp(true) // the broker is lost for 10 s
    clock.ms += 10_000
    engine.setCatchingUp(false, 20_000)
    engine.onTelemetry(reading('flood-a', 10, clock.ms)) // back at once
    const silentAt: string[] = []
    for (let t = 0; t < 40; t++, clock.ms += 1_000) {
      if (t % 2 === 0 && t < 6) engine.onTelemetry(reading('flood-a', 11 + t, clock.ms))
      for (const f of engine.tick().findings) if (f.policy === 'device-silent') silentAt.push(`${t} ${f.deviceId}`)
    }
    // flood-b, never back (last heard 1 s before the loss): the 20 s allowance, then over 5 s (the shortest silence judged).
    // flood-a, heard after, is judged as ever.
    expect(silentAt.filter((s) => s.endsWith('flood-b'))[0]).toBe('25 flood-b')
    expect(silentAt.filter((s) => s.endsWith('flood-a'))[0]).toBe('10 flood-a')
  })

  it('counts silence from when a message was heard, not sent, and not below what its own delays can cause', async () => {
    // 20 devices on a 200 ms interval; after a stall the collector reads each message 1.5 s after it was sent
    // (under the 2 s it takes as on time) and then hears nothing for a second while the broker is busy.
    const start = Date.parse('2026-11-23T12:00:00Z')
    const clock = clockAt(start)
    const engine = new PolicyEngine(shipped, clock)
    const ids = Array.from({ length: 20 }, (_, i) => `housing-${i}`)
    const housing = (id: string, seq: number, sent: number): TelemetryObservation =>
      ({ deviceId: id, kind: 'housing', site: 'estate', ts: sent, seq, fw: '1.8.3', readings: {}, receivedAtMs: clock.ms })
    let seq = 0
    for (; seq < 100; seq++, clock.ms += 200) for (const id of ids) engine.onTelemetry(housing(id, seq, clock.ms))
    expect(engine.tick().findings).toEqual([])
    engine.expectReplayUntil(clock.ms + 120_000) // a stall just ended
    const findings = []
    for (; seq < 200; seq++, clock.ms += 200) {
      for (const id of ids) engine.onTelemetry(housing(id, seq, clock.ms - 1_500))
      if (seq % 25 === 0) findings.push(...engine.tick().findings)
    }
    clock.ms += 1_000
    findings.push(...engine.tick().findings)
    expect(findings.map((f) => `${f.policy} ${f.deviceId}: ${f.summary}`)).toEqual([])
    // A device that really stops is still found, a few seconds on.
    clock.ms += 5_000
    expect(engine.tick().findings.filter((f) => f.policy === 'device-silent')).toHaveLength(20)
  })
})

describe('PolicyEngine and a device\'s own backlog', () => {
  // Five flood sensors every 10 s, warm; flood-0 then leaves the network at 300 s for two minutes.
  function fleetWithAnAbsence (onReturn: (engine: PolicyEngine, clock: { ms: number }, kept: number[], seq: number) => number) {
    const clock = clockAt(0)
    const engine = new PolicyEngine(shipped, clock)
    const ids = Array.from({ length: 5 }, (_, i) => `flood-${i}`)
    const findings: Array<{ at: number, policy: string, deviceId: string, expectedIntervalMs: unknown }> = []
    const kept: number[] = []
    let returnedSeq = -1
    for (let seq = 0; seq <= 60; seq++) {
      clock.ms = seq * 10_000
      for (const id of ids) {
        const away = id === 'flood-0' && clock.ms >= 300_000 && clock.ms < 420_000
        if (away) kept.push(clock.ms)
        else if (id === 'flood-0' && kept.length > 0 && returnedSeq < 0) returnedSeq = onReturn(engine, clock, kept, seq)
        if (!away && !(id === 'flood-0' && returnedSeq >= 0 && seq < returnedSeq)) engine.onTelemetry(reading(id, seq, clock.ms))
      }
      for (let tick = 0; tick < 10; tick++) {
        clock.ms = seq * 10_000 + tick * 1_000
        for (const f of engine.tick().findings) findings.push({ at: clock.ms, policy: f.policy, deviceId: f.deviceId!, expectedIntervalMs: f.evidence.expectedIntervalMs })
      }
    }
    return { engine, clock, findings }
  }

  it('a device back from two minutes off the network sends what it kept: silent while away, no burst on its return', () => {
    const { engine, clock, findings } = fleetWithAnAbsence((engine, clock, kept) => {
      // All twelve kept messages within 60 ms of its return, each with the time it was taken, then its live one.
      kept.forEach((sentAt, i) => engine.onTelemetry({ ...reading('flood-0', sentAt / 10_000, sentAt), receivedAtMs: clock.ms + i * 5 }))
      return 0
    })
    const policies = [...new Set(findings.map((f) => `${f.policy} ${f.deviceId}`))]
    expect(policies).toEqual(['device-silent flood-0'])
    expect(findings[0]!.at).toBe(321_000) // over 3 × 10 s after its last message (290 s), at the next tick
    // Its cadence is still 10 s: stopped for good, it is judged silent on 10 s, not on the 5 ms its backlog arrived at.
    clock.ms += 31_000
    expect(engine.tick().findings.map((f) => `${f.policy} ${f.deviceId} ${f.evidence.expectedIntervalMs}`)).toEqual(
      expect.arrayContaining([expect.stringMatching(/^device-silent flood-0 (9\d{3}|10\d{3})$/)]))
  })

  it('(counted on arrival, the same return was a burst)', () => {
    const { findings } = fleetWithAnAbsence((engine, clock, kept) => {
      // The same twelve messages, but stamped when they arrive: a device that sends twelve at once.
      kept.forEach((sentAt, i) => engine.onTelemetry(reading('flood-0', sentAt / 10_000, clock.ms + i * 5)))
      return 0
    })
    expect(findings.map((f) => f.policy)).toContain('rate-burst')
  })

  it('still flags a flood after a silence, whatever send times its messages claim', () => {
    const claims: Record<string, (kept: number[], i: number, now: number) => number> = {
      'its own cadence from where it left off': (kept, i) => kept[0]! + i * 10_000,
      'crammed into the time it was away, 100 ms apart': (kept, i) => kept[0]! + i * 100,
      'the present': (_kept, _i, now) => now,
    }
    for (const [claim, tsOf] of Object.entries(claims)) {
      const { findings } = fleetWithAnAbsence((engine, clock, kept, seq) => {
        // 300 messages in 3 s on its return, seq counting up from its last.
        for (let i = 0; i < 300; i++) engine.onTelemetry({ ...reading('flood-0', 30 + i, tsOf(kept, i, clock.ms + i * 10)), receivedAtMs: clock.ms + i * 10 })
        return seq + 30 // its later messages go on from there
      })
      expect(findings.filter((f) => f.policy === 'rate-burst').map((f) => f.deviceId), claim).toContain('flood-0')
    }
  })
})

describe('PolicyEngine and a device clock that moves', () => {
  /** A flood sensor every 10 s for five minutes, on time; returns the engine and the next seq. */
  function warmDevice (id = 'flood-0') {
    const clock = clockAt(Date.parse('2026-11-23T12:00:00Z'))
    const engine = new PolicyEngine(shipped, clock)
    let seq = 0
    for (; seq < 30; seq++, clock.ms += 10_000) engine.onTelemetry({ ...reading(id, seq, clock.ms - 40), receivedAtMs: clock.ms })
    return { clock, engine, seq }
  }

  it('a clock set back by less than an interval: the next messages are on time against the new clock, not late', () => {
    const { clock, engine, seq } = warmDevice()
    const backlog: number[] = []
    for (let i = 0; i < 4; i++, clock.ms += 10_000) {
      // Set back 6 s: its ts still moves on (by 4 s), but it is heard on its 10 s cadence.
      backlog.push(engine.onTelemetry({ ...reading('flood-0', seq + i, clock.ms - 6_040), receivedAtMs: clock.ms }).backlogMs!)
    }
    expect(backlog.every((ms) => ms <= 500)).toBe(true)
  })

  it('a collector stall is not a clock step: heard off cadence, sent on it, the message is late', () => {
    const { clock, engine, seq } = warmDevice()
    clock.ms += 30_000 // the collector did not read for 30 s
    // Sent on its cadence 30 s ago, read now: late, as the pipeline must see it.
    expect(engine.onTelemetry({ ...reading('flood-0', seq, clock.ms - 30_040), receivedAtMs: clock.ms }).backlogMs).toBeGreaterThan(25_000)
  })

  it('a clock set back an hour, seq moving on: no replay, and on time from the next message while the collector is behind', () => {
    const { clock, engine, seq } = warmDevice()
    engine.setCatchingUp(true) // e.g. a late heartbeat: messages are placed by the device's clock
    const first = engine.onTelemetry({ ...reading('flood-0', seq, clock.ms - 3_600_040), receivedAtMs: clock.ms })
    expect(first.findings.map((f) => f.policy)).toEqual(['clock-skew'])
    expect(first.backlogMs).toBeLessThanOrEqual(500)
    clock.ms += 10_000
    const second = engine.onTelemetry({ ...reading('flood-0', seq + 1, clock.ms - 3_600_040), receivedAtMs: clock.ms })
    expect(second.backlogMs).toBeLessThanOrEqual(500)
    expect(second.findings.map((f) => f.policy)).toEqual(['clock-skew'])
  })

  it('a reboot onto a corrected clock is a reboot; an old message of the clock that ran ahead is still a replay', () => {
    const ahead = 20 * 60_000
    const { clock, engine } = (() => {
      const clock = clockAt(Date.parse('2026-11-23T12:00:00Z'))
      const engine = new PolicyEngine(shipped, clock)
      // A device whose clock runs 20 min ahead, seq 0 to 29.
      for (let seq = 0; seq < 30; seq++, clock.ms += 10_000) engine.onTelemetry({ ...reading('flood-0', seq, clock.ms + ahead), receivedAtMs: clock.ms })
      return { clock, engine }
    })()
    const bootedAhead = { ...reading('flood-0', 0, clock.ms - 300_000 + ahead), receivedAtMs: clock.ms - 300_000 }
    clock.ms += 30_000
    // It reboots, and syncs its clock: seq 0, a ts 20 min earlier than its last.
    expect(engine.onTelemetry({ ...reading('flood-0', 0, clock.ms - 40), receivedAtMs: clock.ms }).findings.map((f) => f.policy)).toEqual([])
    clock.ms += 10_000
    expect(engine.onTelemetry({ ...reading('flood-0', 1, clock.ms - 40), receivedAtMs: clock.ms }).findings).toEqual([])
    clock.ms += 10_000
    // Someone sends again the seq 0 it sent at its first boot, five minutes ago, 20 min ahead: a replay.
    expect(engine.onTelemetry({ ...bootedAhead, receivedAtMs: clock.ms }).findings.map((f) => f.policy)).toContain('replay')
  })

  it('a clock set forward mid-run, then PlaceGuard and the device both restarted onto a corrected clock: no replay, now or when the clock runs ahead again', () => {
    const clock = clockAt(Date.parse('2026-11-23T12:00:00Z'))
    const first = new PolicyEngine(shipped, clock)
    // The first run ends within the collector's replay window, as `npm start` stopped after 100 s does: no lag is
    // learned as caught up in it, only from messages at live pace.
    first.expectReplayUntil(clock.ms + 120_000)
    const send = (engine: PolicyEngine, seq: number, aheadMs: number) => engine.onTelemetry({ ...reading('energy-3', seq, clock.ms - 40 + aheadMs, '5.3.0'), kind: 'energy', readings: {}, receivedAtMs: clock.ms })
    const findings: string[] = []
    // Every 2.5 s; from seq 30 its clock runs 20 min ahead (the simulator's clock-skew incident).
    for (let seq = 0; seq < 40; seq++, clock.ms += 2_500) findings.push(...send(first, seq, seq >= 20 ? 20 * 60_000 : 0).findings.map((f) => f.policy))
    const saved = first.exportDevices(() => true)
    // Both down for 30 s; the collector comes back within its replay window, the device rebooted with its clock right.
    clock.ms += 30_000
    const second = new PolicyEngine(shipped, clock)
    second.importDevices(saved)
    second.expectReplayUntil(clock.ms + 120_000)
    for (let seq = 0; seq < 20; seq++, clock.ms += 2_500) findings.push(...send(second, seq, 0).findings.map((f) => f.policy))
    // And its clock runs ahead again.
    for (let seq = 20; seq < 40; seq++, clock.ms += 2_500) findings.push(...send(second, seq, 20 * 60_000).findings.map((f) => f.policy))
    expect(findings.filter((p) => p !== 'clock-skew')).toEqual([])
    expect(findings.filter((p) => p === 'clock-skew')).toHaveLength(40)
  })
})

describe('PolicyEngine and a device that fakes its clock', () => {
  it('a flood whose clock jumps back and forth on every message is still a flood, and its peers are not judged by it', () => {
    const start = Date.parse('2026-11-23T12:00:00Z')
    const clock = clockAt(start)
    const engine = new PolicyEngine(shipped, clock)
    const ids = Array.from({ length: 5 }, (_, i) => `flood-${i}`)
    // What each flood message claims, from the present: steps back and forward of an hour, ten minutes, a day.
    const claims = [0, -3_600_000, 600_000, -600_000, 3_600_000, -86_400_000, -5_000, 120_000]
    const findings: Array<{ s: number, finding: string }> = []
    let floodSeq = 30
    for (let s = 0; s < 600; s++) {
      clock.ms = start + s * 1_000
      for (const id of ids) {
        if (s % 10 !== 0 || (id === 'flood-0' && s >= 300)) continue
        for (const f of engine.onTelemetry({ ...reading(id, s / 10, clock.ms - 40), receivedAtMs: clock.ms }).findings) findings.push({ s, finding: `${f.policy} ${f.deviceId}` })
      }
      // From 300 s, flood-0 sends ten a second for a minute, its seq moving on, each message claiming another clock.
      if (s >= 300 && s < 360) {
        for (let k = 0; k < 10; k++) {
          const at = clock.ms + k * 100
          const sent = { ...reading('flood-0', floodSeq, at + claims[floodSeq % claims.length]!), receivedAtMs: at }
          floodSeq++
          for (const f of engine.onTelemetry(sent).findings) findings.push({ s, finding: `${f.policy} ${f.deviceId}` })
        }
      }
      for (const f of engine.tick().findings) findings.push({ s, finding: `${f.policy} ${f.deviceId}` })
    }
    const burst = findings.find((f) => f.finding === 'rate-burst flood-0')
    expect(burst, JSON.stringify(findings.slice(0, 20))).toBeDefined()
    expect(burst!.s).toBeLessThan(320)
    // The others kept to their cadence: nothing about them, and nothing about the pipeline.
    expect(findings.filter((f) => !f.finding.endsWith(' flood-0'))).toEqual([])
  })
})

describe('PolicyEngine at cold start', () => {
  /** Six energy systems at one site, every `intervalMs`, fed for `seconds` to a fresh engine as the collector starts it; `burst(id, s)` says whether a device sends every 250 ms instead at second s. */
  function coldSite (intervalMs: number, seconds: number, burst: (id: string, s: number) => boolean, site = 'harbour', devices = 6) {
    return [...pacedRun({
      ids: Array.from({ length: devices }, (_, i) => `energy-${i}`),
      seconds,
      staggerMs: 300,
      observe: (id, seq, ms) => ({ deviceId: id, kind: 'energy', site, ts: ms - 30, seq, fw: '5.3.0', readings: {}, receivedAtMs: ms }),
      every: (id, sinceMs) => burst(id, sinceMs / 1_000) ? 250 : intervalMs,
      prepare: (engine, t0) => {
        engine.setCatchingUp(true) // until the collector's session settles
        engine.expectReplayUntil(t0 + 120_000)
      },
      onStep: (engine, sinceMs) => { if (sinceMs === 5_000) engine.setCatchingUp(false) },
    }).keys()]
  }

  it('finds a burst that starts before a device\'s first intervals are all in: 4/s, 26 s after the start of one sending every 4 s', () => {
    // By the time it is warm (20 messages) most of its first intervals are the burst's: judged on their median, the
    // burst was its own baseline and raised nothing. Judged on its interval as it stood before, it is 16 times that.
    expect(coldSite(4_000, 60, (id, s) => id === 'energy-1' && s >= 26 && s < 56)).toEqual(['rate-burst energy-1'])
  })

  it('still raises nothing for a clean site at cold start, nor for one whose devices all speed up together', () => {
    expect(coldSite(4_000, 90, () => false)).toEqual([])
    // Every device of the site switched to 250 ms at 40 s (a fleet-wide configuration change): its peers say it is no burst.
    expect(coldSite(4_000, 90, (_id, s) => s >= 40)).toEqual([])
  })

  it('finds a device that floods from its first message by its peers, its baseline being the flood', () => {
    // energy-1 sends every 250 ms from the start (a flood already running when PlaceGuard starts): 16 times its peers.
    expect(coldSite(4_000, 60, (id) => id === 'energy-1')).toEqual(['rate-burst energy-1'])
  })

  it('finds a device that floods from its first message at a site of its own, by its kind across the fleet', () => {
    // Twelve energy systems every 4 s at two sites; one alone at a farm, from its first message every 250 ms; one alone
    // at a depot, every 4 s like the rest.
    const devices = [...Array.from({ length: 12 }, (_, i) => ({ id: `energy-${i}`, site: i < 6 ? 'harbour' : 'quay', every: 4_000 })),
      { id: 'farm-1', site: 'farm', every: 250 }, { id: 'depot-1', site: 'depot', every: 4_000 }]
    const byId = new Map(devices.map((d) => [d.id, d]))
    const found = pacedRun({
      ids: devices.map((d) => d.id),
      seconds: 90,
      staggerMs: 200,
      observe: (id, seq, ms) => ({ deviceId: id, kind: 'energy', site: byId.get(id)!.site, ts: ms - 30, seq, fw: '5.3.0', readings: {}, receivedAtMs: ms }),
      every: (id) => byId.get(id)!.every,
      name: (f) => `${f.policy} ${f.deviceId} ${String(f.evidence.judgedOn)}`,
    })
    expect([...found.keys()]).toEqual(['rate-burst farm-1 kind across the fleet'])
  })

  it('a device that floods from its first message and then keeps to its peers\' pace is not silent; one that then stops is', () => {
    /** Six energy systems every 10 s at one site; energy-1 sends every second from the start, then what `after` says from 60 s; findings with the second they came. */
    function run (after: number | undefined) {
      const found = pacedRun({
        ids: Array.from({ length: 6 }, (_, i) => `energy-${i}`),
        seconds: 300,
        staggerMs: 300,
        observe: (id, seq, ms) => ({ deviceId: id, kind: 'energy', site: 'harbour', ts: ms - 30, seq, fw: '5.3.0', readings: {}, receivedAtMs: ms }),
        every: (id, sinceMs) => id !== 'energy-1' ? 10_000 : sinceMs < 60_000 ? 1_000 : after,
      })
      return new Map([...found].map(([finding, ms]) => [finding, ms / 1_000]))
    }
    // Its baseline is the flood's (every second): judged on that, its first 10 s gap was a silence.
    expect([...run(10_000).keys()]).toEqual(['rate-burst energy-1'])
    // Stopped altogether, it is silent on its peers' pace: 3 × 10 s after its last message.
    const stopped = run(undefined)
    expect([...stopped.keys()]).toEqual(['rate-burst energy-1', 'device-silent energy-1'])
    expect(stopped.get('device-silent energy-1')).toBeGreaterThanOrEqual(90)
    expect(stopped.get('device-silent energy-1')).toBeLessThanOrEqual(95)
  })

  it('a device that keeps to its pace of one a second while its peers fall quiet together is not a flood', () => {
    const clock = clockAt(Date.parse('2026-11-23T12:00:00Z'))
    const engine = new PolicyEngine(shipped, clock)
    const ids = Array.from({ length: 5 }, (_, i) => `energy-${i}`)
    const findings = new Set<string>()
    for (let s = 0; s < 300; s++) {
      clock.ms += 1_000
      // Every device every second; from 180 s all but energy-0 are cut off (their site's backhaul is down).
      for (const [i, id] of ids.entries()) if (s < 180 || i === 0) engine.onTelemetry({ deviceId: id, kind: 'energy', site: 'harbour', ts: clock.ms - 30, seq: s, fw: '5.3.0', readings: {}, receivedAtMs: clock.ms })
      for (const f of engine.tick().findings) findings.add(`${f.policy} ${f.deviceId}`)
    }
    expect([...findings].sort()).toEqual(['device-silent energy-1', 'device-silent energy-2', 'device-silent energy-3', 'device-silent energy-4'])
  })

  it('at a small site (one peer), a burst before its first intervals are in is judged on its own baseline', () => {
    expect(coldSite(4_000, 60, (id, s) => id === 'energy-1' && s >= 26 && s < 56, 'hamlet', 2)).toEqual(['rate-burst energy-1'])
  })
})

describe('PolicyEngine and devices that send every minute or less often', () => {
  /** Ten housing sensors at one site, every `intervalMs` ±10 %, for `minutes`; housing-3 sends every `burstEveryMs` for ten minutes from `burstFromMin`. */
  function slowSite (intervalMs: number, minutes: number, burst?: { everyMs: number, fromMin: number }) {
    let jitter = 0
    const found = pacedRun({
      ids: Array.from({ length: 10 }, (_, i) => `housing-${i}`),
      seconds: minutes * 60,
      staggerMs: Math.floor(intervalMs / 10),
      stepMs: 500,
      tickMs: 5_000,
      observe: (id, seq, ms) => ({ deviceId: id, kind: 'housing', site: 'estate', ts: ms - 30, seq, fw: '1.8.3', readings: { temp_c: 20, humidity_pct: 50, co2_ppm: 600 }, receivedAtMs: ms }),
      every: (id, sinceMs) => {
        const bursting = burst !== undefined && id === 'housing-3' && sinceMs >= burst.fromMin * 60_000 && sinceMs < (burst.fromMin + 10) * 60_000
        jitter = (jitter + 7) % 21 // −10 % to +10 %, spread
        return bursting ? burst.everyMs : Math.round(intervalMs * (0.9 + jitter / 100))
      },
    })
    return new Map([...found].map(([finding, ms]) => [finding, ms / 60_000]))
  }

  it('raises nothing for a clean site of sensors that send every minute, or every five', () => {
    // Counted over 10 s, one message of a device that sends every minute was 6 a minute, six times its baseline:
    // every device of this site was a rate-burst once warm, 20 minutes in.
    expect([...slowSite(60_000, 90).keys()]).toEqual([])
    expect([...slowSite(300_000, 240).keys()]).toEqual([])
  })

  it('finds ten times the rate of a sensor that sends every minute, within two minutes', () => {
    const found = slowSite(60_000, 60, { everyMs: 6_000, fromMin: 40 })
    expect([...found.keys()]).toEqual(['rate-burst housing-3'])
    expect(found.get('rate-burst housing-3')).toBeLessThan(42)
  })
})

describe('PolicyEngine after a burst', () => {
  it('a device back to its pace after a minute at 5/s is not silent: the burst did not become its baseline', () => {
    const found = pacedRun({
      ids: Array.from({ length: 6 }, (_, i) => `flood-${i}`),
      seconds: 12 * 60,
      staggerMs: 1_500,
      stepMs: 100,
      observe: (id, seq, ms) => reading(id, seq, ms),
      // flood-2 sends five a second (the broker's budget) for a minute, five minutes in, then goes back to every 10 s.
      every: (id, sinceMs) => id === 'flood-2' && sinceMs >= 5 * 60_000 && sinceMs < 6 * 60_000 ? 200 : 10_000,
    })
    expect([...found.keys()]).toEqual(['rate-burst flood-2'])
  })
})
