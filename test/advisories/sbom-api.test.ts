/**
 * Component matches in the API: GET /api/advisories counts devices
 * exposed through their firmware's SBOM, GET /api/devices/:id names the
 * component (name, version, purl, fixed version) in `exposures`, and
 * after a firmware update to one whose SBOM has the fixed component the
 * advisory shows as remediated (fastify inject over the in-memory
 * collector parts, OSV synced from a directory, SBOMs recorded).
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { recordSbom, SqliteAdvisoryStore, syncOsvDirectory } from '../../advisories/index.ts'
import { AdvisoryFeed } from '../../app/advisory-feed.ts'
import { buildApi } from '../../dashboards/api/app.ts'
import { createLogger } from '../../shared/logger.ts'
import { apiSourceForTest, deviceCertificate, type TestApiSource, telemetryPoint } from '../helpers/api-source.ts'
import { MQTT_JS_GHSA, cycloneDx, spdx } from './sbom-fixtures.ts'

const VIEWER = 'viewer-token-0123456789abcdef'
const product = { vendor: 'Northgate Systems', model: 'GW-7' }
let api: TestApiSource
let app: FastifyInstance
let seq = 100

beforeAll(async () => {
  api = apiSourceForTest({ tokens: [{ token: VIEWER, role: 'viewer' }] })
  const osv = join(api.dataDir, 'osv')
  mkdirSync(osv)
  writeFileSync(join(osv, 'mqtt.json'), JSON.stringify(MQTT_JS_GHSA))
  const store = new SqliteAdvisoryStore(join(api.dataDir, 'advisories.db'))
  await syncOsvDirectory(osv, { store })
  for (const [firmware, document] of [['2.1.0', cycloneDx('2.1.0', '3.5.1', '2.14.0')], ['2.2.0', cycloneDx('2.2.0', '3.5.2', '2.15.0')], ['1.9.4', spdx('1.9.4', '2.28.6')]] as const) {
    const file = join(api.dataDir, `gw7-${firmware}.json`)
    writeFileSync(file, JSON.stringify(document))
    await recordSbom(store, { ...product, firmware }, file, new Date().toISOString())
  }
  store.close()
  const feed = new AdvisoryFeed(api.dataDir)
  expect(await feed.refresh()).toBe(true)
  const entries = ['gw-1', 'gw-2', 'gw-3'].map((id, i) => ({ ...deviceCertificate({ id, kind: 'energy', site: 'depot' }, i + 1), ...product }))
  api.inventory(entries)
  feed.setDevices(entries)
  api.detection.setAdvisories(feed.index)
  api.source.advisories = { list: () => feed.listing, productOf: (id) => feed.productOf(id), match: (p, fw) => feed.match(p, fw) }
  for (const [id, fw] of [['gw-1', '2.1.0'], ['gw-2', '2.1.0'], ['gw-3', '1.9.4']] as const) api.telemetry(telemetryPoint({ id, kind: 'energy', site: 'depot', fw }, ++seq, Date.now()))
  app = await buildApi(api.source, { logger: createLogger({ level: 'silent' }) })
})
afterAll(async () => {
  await app?.close()
  await api?.close()
})

const get = async (url: string) => (await app.inject({ url, headers: { authorization: `Bearer ${VIEWER}` } })).json<any>() // eslint-disable-line @typescript-eslint/no-explicit-any

describe('SBOM component matches in the API', () => {
  it('counts devices exposed through a component, and names the component on the device', async () => {
    expect((await get('/api/advisories')).items).toMatchObject([{ id: 'GHSA-4wq8-g8p2-5wxr', format: 'osv', cves: ['CVE-2017-10910'], affectedDevices: 2 }])
    const device = await get('/api/devices/gw-1')
    expect(device.exposures).toEqual([{
      advisory: 'GHSA-4wq8-g8p2-5wxr', title: 'Denial of Service in mqtt', cves: ['CVE-2017-10910'], cvss: 7.5, confidence: 'high', matched: 'SEMVER >=2.0.0 <2.15.0',
      remediation: 'update mqtt to 2.15.0 or later', component: { name: 'mqtt', version: '2.14.0', purl: 'pkg:npm/mqtt@2.14.0', fixed: '2.15.0' },
    }])
    expect(device.alerts.filter((a: { policy: string }) => a.policy === 'firmware-vulnerable')).toMatchObject([{ policy: 'firmware-vulnerable', evidence: { advisory: 'GHSA-4wq8-g8p2-5wxr', component: 'mqtt', fixedVersion: '2.15.0' } }])
    expect((await get('/api/devices/gw-3')).exposures).toEqual([])
  })

  it('shows the advisory remediated once the device runs a firmware whose SBOM has the fixed component', async () => {
    api.telemetry(telemetryPoint({ id: 'gw-1', kind: 'energy', site: 'depot', fw: '2.2.0' }, ++seq, Date.now()))
    const after = await get('/api/devices/gw-1')
    expect(after).toMatchObject({ exposures: [], remediated: [{ advisory: 'GHSA-4wq8-g8p2-5wxr', fw: '2.1.0' }] })
    expect(after.alerts.filter((a: { policy: string }) => a.policy === 'firmware-vulnerable')).toEqual([])
    expect((await get('/api/advisories')).items[0]).toMatchObject({ affectedDevices: 1 })
  })
})
