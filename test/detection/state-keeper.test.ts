/**
 * A collector that runs alone keeps what detection learned across its
 * restarts (detection/state-file.ts, state-keeper.ts): the file's contract,
 * and two Detections on one data directory and an injected clock, the
 * second started after the first was stopped, or killed, and down a while.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { afterEach, describe, expect, it } from 'vitest'
import { telemetryPoint } from '../../collector/points.ts'
import { Detection, DetectionStateFile, DetectionStateKeeper } from '../../detection/index.ts'
import { createLogger } from '../../shared/logger.ts'

const T0 = Date.parse('2031-03-01T12:00:00.000Z')
const dirs: string[] = []
afterEach(() => { for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true }) })
function tempDir (): string {
  const dir = mkdtempSync(join(tmpdir(), 'pg-state-keeper-'))
  dirs.push(dir)
  return dir
}

describe('DetectionStateFile', () => {
  const device = (deviceId: string, messages: number) => ({
    deviceId, kind: 'flood' as const, site: 'riverside', previous: null, firstSeenMs: 0, lastSeenMs: 0, lastHeardMs: 0, messages,
    lagMs: null, intervalMs: null, firstIntervals: null, recent: [], seen: [],
  })
  const window = (key: string, expiresAtMs: number) => ({ policy: 'acl-violation' as const, key, times: [1], claims: [], claimsNotKept: 0, expiresAtMs })

  it('keeps one row per device, replaced by a later save; drops windows past their end', () => {
    const path = join(tempDir(), 'detection.db')
    const file = new DetectionStateFile(path)
    expect(file.load()).toEqual({ snapshot: undefined, savedAtMs: undefined, unreadable: [] })
    file.save({ version: 2, takenAtMs: 1_000, devices: [device('flood-1', 1), device('flood-2', 1)], windows: [window('flood-1', 5_000), window('flood-2', 1_500)] })
    file.save({ version: 2, takenAtMs: 2_000, devices: [device('flood-2', 2)], windows: [] })
    file.close()
    const again = new DetectionStateFile(path)
    const { snapshot, savedAtMs, unreadable } = again.load()
    expect({ savedAtMs, unreadable }).toEqual({ savedAtMs: 2_000, unreadable: [] })
    expect(snapshot!.devices.map((d) => `${d.deviceId} ${d.messages}`).sort()).toEqual(['flood-1 1', 'flood-2 2'])
    expect(snapshot!.windows.map((w) => w.key)).toEqual(['flood-1'])
    expect(snapshot).toMatchObject({ version: 2, takenAtMs: 2_000, lorawan: [] })
    again.close()
  })

  it('skips a row that does not parse, and says why', () => {
    const path = join(tempDir(), 'detection.db')
    const file = new DetectionStateFile(path)
    file.save({ version: 2, takenAtMs: 1_000, devices: [device('flood-1', 1)], windows: [] })
    const db = new DatabaseSync(path)
    db.prepare('INSERT INTO devices (id, record) VALUES (?, ?)').run('flood-2', '{"deviceId": "flood-2"')
    db.close()
    const loaded = file.load()
    expect(loaded.snapshot!.devices.map((d) => d.deviceId)).toEqual(['flood-1'])
    expect(loaded.unreadable).toEqual([expect.stringMatching(/^devices: /)])
    file.close()
  })
})

/** Detection on `dir` and an injected clock, its state kept; three flood sensors at one site, one message a second. */
function collectorOn (dir: string, clock: { ms: number, now: () => number }) {
  const logger = createLogger({ level: 'silent' })
  const detection = new Detection({ dataDir: dir, logger, clock, store: () => {}, tickMs: 20, certificateCheckMs: 0 })
  const keeper = new DetectionStateKeeper({ detection, path: join(dir, 'detection.db'), clock, logger, saveEveryMs: 10 })
  const restored = keeper.restore()
  keeper.start()
  detection.setInputConnected(false)
  clock.ms += 500
  detection.setInputConnected(true)
  const send = (id: string, seq: number, fw = '3.2.1'): void => {
    detection.onTelemetry(telemetryPoint('flood', 'riverside', id, { ts: clock.ms - 50, seq, fw, level_cm: 40, battery_v: 3.6 }), clock.ms)
  }
  /** `seconds` of running: `each(second)` sends that second's messages, then the collector's 250 ms heartbeat. */
  const run = (seconds: number, each: (second: number) => void): void => {
    for (let s = 0; s < seconds; s++) {
      each(s)
      for (let b = 0; b < 4; b++) {
        clock.ms += 250
        detection.pipeline.beat()
      }
    }
  }
  /** Detection's own timers (judging every 20 ms of real time) and the keeper's (saving every 10 ms) run for a moment. */
  const settle = async (): Promise<void> => {
    detection.start()
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  const openAlerts = async (): Promise<string[]> => (await detection.alerts.list({ status: 'open' })).map((a) => `${a.policy} ${a.deviceId}`).sort()
  return { detection, keeper, restored, send, run, settle, openAlerts }
}

describe('DetectionStateKeeper', () => {
  for (const end of ['stopped', 'killed'] as const) {
    it(`after a restart (${end}, then down 30 s), finds a replay, a downgrade and a device that died while it was down`, async () => {
      const dir = tempDir()
      const clock = { ms: T0, now: () => clock.ms }
      const first = collectorOn(dir, clock)
      expect(first.restored).toBe(0)
      first.run(40, (s) => { for (const id of ['flood-0', 'flood-1', 'flood-2']) first.send(id, s) })
      await first.settle() // saved on the keeper's timer
      if (end === 'stopped') first.keeper.stop()
      // killed: no last save at stop, only what the timer saved
      await first.detection.stop()
      clock.ms += 30_000

      const second = collectorOn(dir, clock)
      expect(second.restored).toBe(3)
      // flood-0 sends an old seq with a new ts, flood-1 comes back on older firmware, flood-2 never comes back.
      second.run(1, () => {
        second.send('flood-0', 10)
        second.send('flood-1', 40, '3.1.0')
      })
      second.run(100, (s) => {
        second.send('flood-0', 41 + s)
        second.send('flood-1', 41 + s, '3.1.0')
      })
      await second.settle()
      // 101 s after the restart flood-2 is not judged yet: 4 × its 30.5 s away to reconnect first.
      expect(await second.openAlerts()).toEqual(['firmware-downgrade flood-1', 'replay flood-0'])
      second.run(30, (s) => {
        second.send('flood-0', 141 + s)
        second.send('flood-1', 141 + s, '3.1.0')
      })
      await second.settle()
      expect(await second.openAlerts()).toEqual(['device-silent flood-2', 'firmware-downgrade flood-1', 'replay flood-0'])
      second.keeper.stop()
      await second.detection.stop()
      first.keeper.stop() // killed: its timer and file were left behind
    })
  }

  it('starts afresh, and says so, when its file is not a database', async () => {
    const dir = tempDir()
    writeFileSync(join(dir, 'detection.db'), 'not a database')
    const lines: string[] = []
    const logger = createLogger({ level: 'error', destination: { write: (line: string) => { lines.push(line) } } })
    const clock = { ms: T0, now: () => clock.ms }
    const detection = new Detection({ dataDir: dir, logger, clock, store: () => {}, tickMs: 20, certificateCheckMs: 0 })
    const keeper = new DetectionStateKeeper({ detection, path: join(dir, 'detection.db'), clock, logger })
    expect(keeper.restore()).toBe(0)
    keeper.start()
    keeper.stop()
    await detection.stop()
    expect(lines.join('')).toMatch(/its saved state cannot be read/)
  })
})
