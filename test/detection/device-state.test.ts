/**
 * Detection's narrow door to the engine's learned state: exported by one
 * Detection, imported by another, which then alerts a replay into its own
 * alert book; a snapshot it cannot read is logged and changes nothing;
 * forgotten devices are not judged silent.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { afterEach, describe, expect, it } from 'vitest'
import { Detection } from '../../detection/index.ts'
import { createLogger } from '../../shared/logger.ts'
import type { StoredPoint } from '../../shared/stored-point.ts'

const dirs: string[] = []
const detections: Detection[] = []
afterEach(async () => {
  for (const detection of detections.splice(0)) await detection.stop()
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

function detection () {
  const lines: Array<{ msg: string, reason?: string }> = []
  const destination = new Writable({ write (chunk: Buffer, _encoding, done) { lines.push(JSON.parse(chunk.toString()) as { msg: string }); done() } })
  const dir = mkdtempSync(join(tmpdir(), 'pg-device-state-'))
  dirs.push(dir)
  const created = new Detection({ dataDir: dir, logger: createLogger({ level: 'warn', destination }), store: () => {}, certificateCheckMs: 0 })
  detections.push(created)
  return { detection: created, lines }
}
const point = (device: string, seq: number, at: number): StoredPoint =>
  ({ measurement: 'flood', tags: { device, site: 'riverside' }, fields: { seq, fw: '3.2.1', level_cm: 80, battery_v: 3.6 }, timestampMs: at })

describe('Detection and device state', () => {
  it('hands a device\'s history to another Detection, which alerts a replay of an old seq', async () => {
    const { detection: a } = detection()
    const { detection: b } = detection()
    const start = Date.now() - 60_000
    for (let seq = 1; seq <= 20; seq++) a.onTelemetry(point('flood-1', seq, start + seq * 2_000), start + seq * 2_000)
    const snapshot = a.exportDeviceState((id) => id === 'flood-1')
    expect(b.importDeviceState(JSON.parse(JSON.stringify(snapshot)) as unknown)).toBe(1)
    b.onTelemetry(point('flood-1', 7, Date.now()))
    expect((await b.alerts.list()).map((alert) => `${alert.policy} ${alert.deviceId}`)).toEqual(['replay flood-1'])
    expect(a.forgetDevices(() => true)).toBe(1)
    expect(a.rateOf('flood-1')).toBeUndefined()
  })

  it('logs why it ignores a snapshot it cannot read, and takes nothing in', () => {
    const { detection: b, lines } = detection()
    expect(b.importDeviceState({ version: 99, devices: [] })).toBe(0)
    expect(b.importDeviceState('not json at all')).toBe(0)
    expect(lines.map((line) => `${line.msg}: ${line.reason}`)).toEqual([
      'detection: device state snapshot ignored; its devices are learned afresh: snapshot version 99 is not a version this engine reads (1, 2)',
      'detection: device state snapshot ignored; its devices are learned afresh: not a device state snapshot (no version)',
    ])
    expect(b.rateOf('flood-1')).toBeUndefined()
  })
})
