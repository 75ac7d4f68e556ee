/**
 * Advisories end to end: devices issued with vendor and model, a CSAF
 * mirror synced into the data directory, a real broker and collector
 * service, telemetry published by mosquitto_pub (a client PlaceGuard did
 * not write). The collector loads the advisories with the inventory; the
 * affected meter's firmware-vulnerable alert names the advisory, its twin
 * at a version the advisory calls not affected (VEX) stays quiet, and a
 * firmware update resolves the alert.
 */
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SqliteAdvisoryStore, syncCsafProvider } from '../../advisories/index.ts'
import { type CollectorService, createCollectorService } from '../../app/collector-service.ts'
import { loadConfig } from '../../app/config.ts'
import { createLogger } from '../../shared/logger.ts'
import { telemetryTopic } from '../../shared/topics.ts'
import { type RunningBroker, startBroker, waitFor } from '../helpers/broker.ts'
import { advisoryFile, writeProvider } from '../helpers/csaf-provider.ts'
import { createTestFleet, type TestFleet } from '../helpers/fleet.ts'
import { mosquittoPub } from '../helpers/mosquitto-clients.ts'

let fleet: TestFleet
let broker: RunningBroker
let service: CollectorService
let seq = 0

beforeAll(async () => {
  fleet = await createTestFleet(['meter-1', 'meter-2'].map((deviceId) => ({ deviceId, kind: 'energy', site: 'depot', vendor: 'Acme Metering', model: 'EM-400' })))
  const mirror = join(fleet.dataDir, 'mirror')
  writeProvider(mirror, 'https://csaf.example.org/.well-known/csaf', [advisoryFile({
    id: 'ICSA-26-050-01', cves: ['CVE-2026-5001'], cvss: [8.6], remediation: 'Update to 5.4.0.',
    products: [
      { vendor: 'Acme Metering', model: 'EM-400', ranges: ['vers:semver/>=5.3.0|<5.4.0'] },
      { vendor: 'Acme Metering', model: 'EM-400', versions: ['5.3.2'], status: 'known_not_affected' },
    ],
  })])
  const store = new SqliteAdvisoryStore(join(fleet.dataDir, 'advisories.db'))
  expect(await syncCsafProvider(mirror, { store })).toMatchObject({ new: 1, refused: [] })
  store.close()
  broker = await startBroker(fleet)
  service = createCollectorService(loadConfig({ env: {}, flags: { dataDir: fleet.dataDir } }), broker.url, createLogger({ level: 'silent' }))
  await service.start()
})

afterAll(async () => {
  await service?.stop()
  await broker?.close()
  fleet?.cleanup()
})

async function publish (deviceId: string, fw: string): Promise<void> {
  const files = fleet.device(deviceId)
  const payload = JSON.stringify({ ts: Date.now(), seq: ++seq, fw, power_kw: 2, voltage_v: 231, energy_kwh: 1000 + seq })
  const result = await mosquittoPub(broker.port, { cafile: fleet.paths.caCert, cert: files.cert, key: files.key }, deviceId, telemetryTopic('depot', 'energy', deviceId), payload)
  expect(result).toMatchObject({ code: 0 })
}

const vulnerable = async () => (await service.detection.alerts.list({ policy: 'firmware-vulnerable' })).map((a) => ({ device: a.deviceId, status: a.status, evidence: a.evidence }))

describe('advisories through the collector', () => {
  it('alerts on the affected device only, with the advisory, and resolves on a firmware update', async () => {
    expect(service.advisories.listing.map((a) => a.id)).toEqual(['ICSA-26-050-01'])
    await publish('meter-1', '5.3.1')
    await publish('meter-2', '5.3.2')
    await waitFor(async () => (await vulnerable()).length > 0 && service.fleet.summaryOf('meter-2')?.firmware === '5.3.2', 10_000, 'the alert, and meter-2 heard')
    expect(await vulnerable()).toMatchObject([{ device: 'meter-1', status: 'open', evidence: { advisory: 'ICSA-26-050-01', cves: 'CVE-2026-5001', cvss: 8.6, confidence: 'high', remediation: 'vendor_fix: Update to 5.4.0.' } }])
    await publish('meter-1', '5.4.0')
    await waitFor(async () => (await vulnerable())[0]?.status === 'resolved', 10_000, 'the alert resolved')
  })
})
