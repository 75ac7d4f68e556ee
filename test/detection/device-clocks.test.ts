/**
 * Whether the collector is keeping up is judged on how late messages are
 * against each device's usual lag, and devices' clocks are not
 * PlaceGuard's: some run seconds slow, some are set back. These runs drive
 * Detection on an injected clock (a heartbeat every 250 ms, as the
 * collector's timer does) with fleets whose clocks are off, and check that
 * detection both starts and still tells a real backlog.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { telemetryPoint } from '../../collector/points.ts'
import { Detection } from '../../detection/index.ts'
import { createLogger } from '../../shared/logger.ts'

const T0 = Date.parse('2031-03-01T12:00:00.000Z')

/** A fleet of `devices` flood sensors at one site, one message a second each; `offsetMs(d)` is device d's clock error (positive: slow). */
function fleetRun (devices: number, offsetMs: (device: number) => number) {
  const dir = mkdtempSync(join(tmpdir(), 'pg-device-clocks-'))
  const clock = { ms: T0, now: () => clock.ms }
  const detection = new Detection({ dataDir: dir, logger: createLogger({ level: 'silent' }), clock, store: () => {}, tickMs: 20, certificateCheckMs: 0 })
  const stopped = new Set<number>()
  const changes: string[] = []
  let behind = detection.pipeline.behind
  const at = (): string => `${(clock.ms - T0) / 1000}s`
  const beat = (): void => {
    detection.pipeline.beat()
    if (detection.pipeline.behind !== behind) {
      behind = detection.pipeline.behind
      changes.push(`${at()} ${behind ? 'behind' : 'caught up'}`)
    }
  }
  /** Device d's message sent at `sentAtMs` (its own clock adds its offset), received now; its seq counts the seconds it has sent, so a backlog read late keeps its place in seq. */
  const send = (d: number, sentAtMs: number): void => {
    detection.onTelemetry(telemetryPoint('flood', 'small-site', `flood-${d}`, { ts: sentAtMs - offsetMs(d), seq: Math.floor((sentAtMs - T0) / 1000) + 1, fw: '3.2.1', level_cm: 40, battery_v: 3.6 }), clock.ms)
  }
  /** `seconds` of live running: each device sends on the second, received 50 ms later. */
  const live = (seconds: number): void => {
    for (let i = 0; i < seconds * 4; i++) {
      clock.ms += 250
      if (i % 4 === 0) for (let d = 0; d < devices; d++) if (!stopped.has(d)) send(d, clock.ms - 50)
      beat()
    }
  }
  /** The collector frozen for `seconds`, then the broker's backlog read at twelve times the pace it was sent, live messages in between. */
  const freezeAndCatchUp = (seconds: number): void => {
    const frozenAt = clock.ms
    clock.ms += seconds * 1000
    beat()
    const backlog: number[] = []
    for (let t = frozenAt + 1000; t <= clock.ms; t += 1000) backlog.push(t)
    while (backlog.length > 0) {
      clock.ms += 250
      // 3 s of the fleet's sending per 250 ms beat: twelve times the pace it was sent.
      for (const sentAt of backlog.splice(0, 3)) for (let d = 0; d < devices; d++) if (!stopped.has(d)) send(d, sentAt)
      if ((clock.ms - frozenAt) % 1000 === 0) for (let d = 0; d < devices; d++) if (!stopped.has(d)) send(d, clock.ms - 50)
      beat()
    }
  }
  detection.setInputConnected(false)
  clock.ms += 500
  detection.setInputConnected(true)
  behind = detection.pipeline.behind
  const openAlerts = async (): Promise<string[]> => (await detection.alerts.list({ status: 'open' })).map((a) => `${a.policy} ${a.deviceId}`).sort()
  /** Detection's own timers (a judging tick every 20 ms of real time) run for a moment, on the clock as it stands. */
  const tick = async (): Promise<void> => {
    detection.start()
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  return { detection, clock, changes, live, freezeAndCatchUp, stopped, openAlerts, tick, close: async () => { await detection.stop(); rmSync(dir, { recursive: true, force: true }) } }
}

const runs: Array<{ close: () => Promise<void> }> = []
afterEach(async () => { for (const run of runs.splice(0)) await run.close() })

describe('the collector keeping up, with devices\' clocks off', () => {
  it.each([
    { devices: 5, slow: 2 },
    { devices: 1000, slow: 150 },
  ])('a first start with $slow of $devices clocks 5 s slow: caught up at once, and silence is judged', async ({ devices, slow }) => {
    const run = fleetRun(devices, (d) => d < slow ? 5_000 : 0)
    runs.push(run)
    run.live(60)
    // Behind until the session settles (5 s), then caught up and staying so: late by their clocks, not by a backlog.
    expect(run.changes).toEqual(['5.5s caught up'])
    expect(await run.openAlerts()).toEqual([])
    // A slow-clocked device that stops is found silent: the check is on.
    run.stopped.add(0)
    run.live(40)
    await run.tick()
    expect(await run.openAlerts()).toEqual(['device-silent flood-0'])
  })

  it('still holds itself behind through a real backlog after a freeze, on a fleet with slow clocks', async () => {
    const run = fleetRun(5, (d) => d < 2 ? 5_000 : 0)
    runs.push(run)
    run.live(30)
    run.freezeAndCatchUp(30)
    run.live(20)
    // Frozen from 30.5 s to 60.5 s: behind from then until its 30 s of backlog were read (2.5 s at twelve times
    // the pace, to 63 s), and caught up in the first second after it.
    expect(run.changes.slice(1)).toHaveLength(2)
    expect(run.changes[1]).toBe('60.5s behind')
    expect(run.changes[2]).toMatch(/caught up$/)
    const caughtUpAt = Number(run.changes[2]!.split('s ')[0])
    expect(caughtUpAt).toBeGreaterThanOrEqual(63)
    expect(caughtUpAt).toBeLessThanOrEqual(65)
    const alerts = await run.detection.alerts.list()
    expect(alerts.map((a) => `${a.policy} ${a.status}`)).toEqual(['pipeline-stalled resolved'])
  })

  it('two of three clocks set back 20 minutes: clock-skew for each, the collector not behind, silence still judged', async () => {
    const setBack = new Set<number>()
    const run = fleetRun(3, (d) => setBack.has(d) ? 20 * 60_000 : 0)
    runs.push(run)
    run.live(30)
    setBack.add(0)
    setBack.add(1)
    run.live(120)
    expect(run.detection.pipeline.behind).toBe(false)
    expect(await run.openAlerts()).toEqual(['clock-skew flood-0', 'clock-skew flood-1'])
    run.stopped.add(2)
    run.live(40)
    await run.tick()
    expect(await run.openAlerts()).toEqual(['clock-skew flood-0', 'clock-skew flood-1', 'device-silent flood-2'])
  })

  it('most of a large site\'s clocks set back 10 minutes at once: clock-skew, the collector not behind, silence still judged', { timeout: 60_000 }, async () => {
    // Its time server corrected: 30 of 40 devices' clocks go back together. Their messages now
    // arrive 10 min "late" against the lag learned before, as a collector's backlog would — but
    // each device's seq moves on while its ts goes back, which no backlog does.
    const setBack = new Set<number>()
    const run = fleetRun(40, (d) => setBack.has(d) ? 10 * 60_000 : 0)
    runs.push(run)
    run.live(30)
    for (let d = 0; d < 30; d++) setBack.add(d)
    run.live(60)
    expect(run.changes).toEqual(['5.5s caught up'])
    const alerts = await run.detection.alerts.list()
    expect(alerts.filter((a) => a.policy !== 'clock-skew' && a.policy !== 'alert-storm').map((a) => `${a.policy} ${a.deviceId}`)).toEqual([])
    // One of them stops: its silence is judged, against the clock as it now is.
    run.stopped.add(3)
    run.live(40)
    await run.tick()
    expect((await run.openAlerts()).filter((a) => a.startsWith('device-silent'))).toEqual(['device-silent flood-3'])
  })
})
