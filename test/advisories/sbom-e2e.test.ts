/**
 * SBOMs end to end: gateways issued with vendor and model, an OSV
 * directory synced (a GHSA for the npm mqtt client, an NVD-converted
 * record for Mbed TLS), the SBOM of firmware 2.1.0 recorded, a real
 * broker and collector service, telemetry published by mosquitto_pub.
 * The gateway at 2.1.0 gets a firmware-vulnerable alert naming the
 * component; 2.2.0 (its SBOM recorded while the collector runs) still
 * carries the affected Mbed TLS, so the alert stays open; 2.2.1, with
 * every component fixed, resolves it and the API shows no exposure.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { recordSbom, SqliteAdvisoryStore, syncOsvDirectory } from '../../advisories/index.ts'
import { type CollectorService, createCollectorService } from '../../app/collector-service.ts'
import { loadConfig } from '../../app/config.ts'
import { exposuresOf } from '../../dashboards/api/routes-advisories.ts'
import { createLogger } from '../../shared/logger.ts'
import { telemetryTopic } from '../../shared/topics.ts'
import { type RunningBroker, startBroker, waitFor } from '../helpers/broker.ts'
import { createTestFleet, type TestFleet } from '../helpers/fleet.ts'
import { mosquittoPub } from '../helpers/mosquitto-clients.ts'
import { MBEDTLS_NVD, MQTT_JS_GHSA, cycloneDx } from './sbom-fixtures.ts'

const product = { vendor: 'Northgate Systems', model: 'GW-7' }
let fleet: TestFleet
let broker: RunningBroker
let service: CollectorService
let seq = 0

function sbomFile (name: string, document: unknown): string {
  const path = join(fleet.dataDir, 'sboms', name)
  writeFileSync(path, JSON.stringify(document))
  return path
}

async function withStore<T> (use: (store: SqliteAdvisoryStore) => Promise<T>): Promise<T> {
  const store = new SqliteAdvisoryStore(join(fleet.dataDir, 'advisories.db'))
  try {
    return await use(store)
  } finally {
    store.close()
  }
}

beforeAll(async () => {
  fleet = await createTestFleet(['gw-1', 'gw-2'].map((deviceId) => ({ deviceId, kind: 'energy', site: 'depot', ...product })))
  const osv = join(fleet.dataDir, 'osv')
  mkdirSync(osv)
  mkdirSync(join(fleet.dataDir, 'sboms'))
  writeFileSync(join(osv, 'GHSA-4wq8-g8p2-5wxr.json'), JSON.stringify(MQTT_JS_GHSA))
  writeFileSync(join(osv, 'CVE-2024-23170.json'), JSON.stringify(MBEDTLS_NVD))
  await withStore(async (store) => {
    expect(await syncOsvDirectory(osv, { store })).toMatchObject({ new: 2, refused: [], warnings: [] })
    await recordSbom(store, { ...product, firmware: '2.1.0' }, sbomFile('gw7-2.1.0.cdx.json', cycloneDx('2.1.0', '3.5.1', '2.14.0')), new Date().toISOString())
  })
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

const vulnerable = async () => (await service.detection.alerts.list({ policy: 'firmware-vulnerable' })).map((a) => ({ device: a.deviceId, status: a.status, summary: a.summary, evidence: a.evidence }))
const api = {
  list: () => service.advisories.listing,
  productOf: (id: string) => service.advisories.productOf(id),
  match: (p: typeof product, fw: string) => service.advisories.match(p, fw),
}

describe('SBOM components through the collector', () => {
  it('alerts on the firmware whose component is affected, naming it, and resolves when firmware with the fixed component is reported', async () => {
    await publish('gw-1', '2.1.0')
    // A firmware with no SBOM recorded is matched on its vendor and model only: nothing here.
    await publish('gw-2', '2.0.9')
    await waitFor(async () => (await vulnerable()).length > 0 && service.fleet.summaryOf('gw-2')?.firmware === '2.0.9', 10_000, 'the alert, and gw-2 heard')
    const [alert, ...others] = await vulnerable()
    expect(others).toEqual([])
    expect(alert).toMatchObject({
      device: 'gw-1', status: 'open',
      evidence: {
        advisory: 'GHSA-4wq8-g8p2-5wxr', advisories: 'GHSA-4wq8-g8p2-5wxr,CVE-2024-23170', cves: 'CVE-2017-10910,CVE-2024-23170', confidence: 'high',
        component: 'mqtt', componentVersion: '2.14.0', purl: 'pkg:npm/mqtt@2.14.0', fixedVersion: '2.15.0', remediation: 'update mqtt to 2.15.0 or later',
      },
    })
    expect(alert!.summary).toContain('through its component mqtt 2.14.0')
    expect(exposuresOf(api, 'gw-1', '2.1.0').map((e) => [e.advisory, e.component?.name, e.component?.version])).toEqual([
      ['GHSA-4wq8-g8p2-5wxr', 'mqtt', '2.14.0'], ['CVE-2024-23170', 'mbedtls', '3.5.1'],
    ])

    // The supplier ships 2.2.0 with the MQTT client fixed but Mbed TLS not; its SBOM is recorded while the collector runs.
    await withStore(async (store) => recordSbom(store, { ...product, firmware: '2.2.0' }, sbomFile('gw7-2.2.0.cdx.json', cycloneDx('2.2.0', '3.5.1', '2.15.0')), new Date().toISOString()))
    service.refreshInventory()
    await waitFor(() => service.advisories.index?.hasSbom(product, '2.2.0') === true, 10_000, 'the 2.2.0 SBOM loaded')
    await publish('gw-1', '2.2.0')
    await waitFor(() => service.fleet.summaryOf('gw-1')?.firmware === '2.2.0', 10_000, 'gw-1 heard at 2.2.0')
    expect(await vulnerable()).toMatchObject([{ device: 'gw-1', status: 'open' }])
    expect(exposuresOf(api, 'gw-1', '2.2.0').map((e) => [e.advisory, e.component?.name, e.component?.version, e.remediation])).toEqual([
      ['CVE-2024-23170', 'mbedtls', '3.5.1', 'no fixed version of mbedtls is published'],
    ])

    // 2.2.1 fixes both: the alert resolves, and the device shows no exposure.
    await withStore(async (store) => recordSbom(store, { ...product, firmware: '2.2.1' }, sbomFile('gw7-2.2.1.cdx.json', cycloneDx('2.2.1', '3.5.2', '2.15.0')), new Date().toISOString()))
    service.refreshInventory()
    await waitFor(() => service.advisories.index?.hasSbom(product, '2.2.1') === true, 10_000, 'the 2.2.1 SBOM loaded')
    await publish('gw-1', '2.2.1')
    await waitFor(async () => (await vulnerable())[0]?.status === 'resolved', 10_000, 'the alert resolved')
    expect(exposuresOf(api, 'gw-1', '2.2.1')).toEqual([])
  })
})
