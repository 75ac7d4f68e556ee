/**
 * Detection.onLorawan: an integration event's findings become alerts in
 * the alert book with their threat, and clear like the others.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { afterEach, describe, expect, it } from 'vitest'
import { Detection } from '../../detection/index.ts'
import { createLogger } from '../../shared/logger.ts'
import type { LorawanObservation } from '../../shared/lorawan.ts'

const dirs: string[] = []
const detections: Detection[] = []
afterEach(async () => {
  for (const detection of detections.splice(0)) await detection.stop()
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

function detection (): Detection {
  const dir = mkdtempSync(join(tmpdir(), 'pg-lorawan-'))
  dirs.push(dir)
  const created = new Detection({ dataDir: dir, logger: createLogger({ level: 'error', destination: new Writable({ write (_c, _e, done) { done() } }) }), store: () => {}, certificateCheckMs: 0 })
  detections.push(created)
  return created
}

const event = (fields: Partial<LorawanObservation> = {}): LorawanObservation => ({
  integrationId: 'cs-council', network: 'chirpstack',
  message: { network: 'chirpstack', event: 'up', devEui: '70b3d50000000099', fCnt: 7, receivedAtMs: Date.now(), gateways: [{ gatewayId: 'gw-r1', rssi: -95, snr: 4 }] },
  ...fields,
})

describe('Detection.onLorawan', () => {
  it('opens one alert for an unknown DevEUI with its threat, and resolves it once the DevEUI is registered', async () => {
    const d = detection()
    for (let i = 0; i < 5; i++) d.onLorawan(event())
    const [alert] = await d.alerts.list()
    expect(alert).toMatchObject({ policy: 'lorawan-unknown-device', deviceId: 'lorawan:cs-council:70b3d50000000099', status: 'open', stride: 'Spoofing', occurrences: 1 })
    d.onLorawan(event({ device: { deviceId: 'flood-99', kind: 'flood', site: 'riverside' } }))
    expect((await d.alerts.list()).map((a) => a.status)).toEqual(['resolved'])
  })

  it('raises a frame counter that went back on the device, with its site and kind', async () => {
    const d = detection()
    const device = { deviceId: 'flood-7', kind: 'flood', site: 'riverside' }
    const now = Date.now()
    d.onLorawan(event({ device, message: { ...event().message, fCnt: 900, receivedAtMs: now - 600_000 } }))
    d.onLorawan(event({ device, message: { ...event().message, fCnt: 12, receivedAtMs: now } }))
    expect((await d.alerts.list()).map((a) => `${a.policy} ${a.deviceId} ${a.site} ${a.kind} ${a.severity}`)).toEqual(['lorawan-fcnt-reset flood-7 riverside flood high'])
  })
})
