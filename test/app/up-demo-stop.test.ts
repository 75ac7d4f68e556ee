/**
 * `placeguard up --demo-devices` (npm start) stopping: its demo fleet goes
 * silent because PlaceGuard stops it, and while the fleet waits for its
 * last acknowledgements (a throttled flooder's take up to 9 s) the devices
 * must not be judged silent. Every npm start stopped on SIGINT left a
 * device-silent alert for its fastest device.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { startUp } from '../../app/index.ts'
import { loadConfig } from '../../app/config.ts'
import { AlertBook } from '../../detection/alert-book.ts'
import { createLogger } from '../../shared/logger.ts'
import { freePort } from '../helpers/free-port.ts'

const dirs: string[] = []
afterAll(() => { for (const dir of dirs) rmSync(dir, { recursive: true, force: true }) })

describe('placeguard up with a demo fleet', () => {
  it('stops its demo fleet without judging its devices silent', { timeout: 120_000 }, async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'pg-up-stop-'))
    dirs.push(dataDir)
    // A flooder 10 s in: the broker throttles it, so at the stop its client still waits for acknowledgements.
    const scenario = join(dataDir, 'flood.yaml')
    writeFileSync(scenario, 'name: flood\nincidents:\n  - { policy: rate-burst, mode: flood, count: 300, at: 10s, select: { kind: flood, count: 1 } }\n')
    const config = loadConfig({ env: {}, flags: { dataDir, mqttPort: await freePort(), httpPort: await freePort(), mqttHost: '127.0.0.1', httpHost: '127.0.0.1' } })
    const up = await startUp(config, createLogger({ level: 'silent' }), { devices: 8, intervalMs: 500, scenarioFile: scenario })
    // Long enough for each device's interval to be learned (device-silent's warm-up is 5 messages).
    await new Promise((resolve) => setTimeout(resolve, 15_000))
    const stopping = Date.now()
    await up.stop()
    const stopMs = Date.now() - stopping
    const book = new AlertBook({ path: join(dataDir, 'alerts.db') })
    try {
      const alerts = (await book.list()).map((a) => `${a.policy} ${a.deviceId}`)
      expect(alerts.filter((a) => a.startsWith('rate-burst'))).toHaveLength(1) // the flood was seen: detection ran
      expect(alerts.filter((a) => a.startsWith('device-silent')), `stop took ${stopMs} ms`).toEqual([])
    } finally {
      await book.close()
    }
  })
})
