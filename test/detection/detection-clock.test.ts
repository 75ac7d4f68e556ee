/**
 * Detection's wiring runs on the clock it is given: receive times, alert
 * times, quarantine ends and the stored alert points all come from it, so
 * wiring tests need no real minutes.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { telemetryPoint } from '../../collector/points.ts'
import { Detection } from '../../detection/index.ts'
import type { QuarantineCommand } from '../../shared/control.ts'
import { createLogger } from '../../shared/logger.ts'
import type { StoredPoint } from '../../shared/stored-point.ts'

const T0 = Date.parse('2031-03-01T12:00:00.000Z')

describe('detection on an injected clock', () => {
  let dir: string
  let now: number
  let detection: Detection
  let stored: StoredPoint[]
  let commands: QuarantineCommand[]
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'pg-detection-clock-'))
    now = T0
    stored = []
    commands = []
    detection = new Detection({
      dataDir: dir, logger: createLogger({ level: 'silent' }), clock: { now: () => now },
      store: (points) => { stored.push(...points) },
      command: async (command) => { commands.push(command) },
    })
  })
  afterEach(async () => {
    await detection.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  it('takes receive time, alert time and the stored alert point from the clock, not the wall', async () => {
    // Sent at the injected now: on the wall clock this reading is years ahead (clock-skew), on the injected one it is on time.
    detection.onTelemetry(telemetryPoint('flood', 'riverside', 'flood-00001', { ts: T0, seq: 1, fw: '2.9.0', level_cm: 40, battery_v: 3.6 }))
    const alerts = (await detection.alerts.list())
    expect(alerts.map((a) => a.policy)).toEqual(['firmware-outdated'])
    expect(alerts[0]).toMatchObject({ deviceId: 'flood-00001', detectedAt: new Date(T0).toISOString(), lastSeenAt: new Date(T0).toISOString() })
    const alertPoints = stored.filter((p) => p.measurement === 'alert')
    expect(alertPoints).toHaveLength(1)
    expect(alertPoints[0]!.timestampMs).toBe(T0)
  })

  it('reads a later reading as later: a second finding updates the alert at the clock\'s new time', async () => {
    detection.onTelemetry(telemetryPoint('flood', 'riverside', 'flood-00001', { ts: T0, seq: 1, fw: '2.9.0', level_cm: 40, battery_v: 3.6 }))
    now = T0 + 90_000
    detection.onTelemetry(telemetryPoint('flood', 'riverside', 'flood-00001', { ts: now, seq: 2, fw: '2.9.0', level_cm: 41, battery_v: 3.6 }))
    const [alert] = (await detection.alerts.list())
    expect(alert).toMatchObject({ detectedAt: new Date(T0).toISOString(), lastSeenAt: new Date(T0 + 90_000).toISOString(), occurrences: 2 })
    expect((await detection.alerts.list()).filter((a) => a.policy === 'clock-skew')).toEqual([])
  })
})
