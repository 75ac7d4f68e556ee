/**
 * The API's advisories: GET /api/advisories with how many devices each
 * affects now, and the device view's vendor, model, exposures and
 * remediated advisories after a firmware update (fastify inject over the
 * in-memory collector parts, advisories synced from a mirror directory).
 */
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SqliteAdvisoryStore, syncCsafProvider } from '../../advisories/index.ts'
import { AdvisoryFeed } from '../../app/advisory-feed.ts'
import { buildApi } from '../../dashboards/api/app.ts'
import { createLogger } from '../../shared/logger.ts'
import { apiSourceForTest, deviceCertificate, type TestApiSource, telemetryPoint } from '../helpers/api-source.ts'
import { advisoryFile, writeProvider } from '../helpers/csaf-provider.ts'

const VIEWER = 'viewer-token-0123456789abcdef'
let api: TestApiSource
let app: FastifyInstance
let seq = 100

beforeAll(async () => {
  api = apiSourceForTest({ tokens: [{ token: VIEWER, role: 'viewer' }] })
  const mirror = join(api.dataDir, 'mirror')
  writeProvider(mirror, 'https://csaf.example.org/.well-known/csaf', [
    advisoryFile({ id: 'ICSA-26-040-01', cves: ['CVE-2026-4001'], cvss: [9.1], products: [{ vendor: 'Acme Metering', model: 'EM-400', ranges: ['vers:generic/<5.3.0'] }] }),
    advisoryFile({ id: 'ICSA-26-040-02', cves: ['CVE-2026-4002'], cvss: [4.3], products: [{ vendor: 'Other', model: 'X', versions: ['1.0'] }] }),
  ])
  const store = new SqliteAdvisoryStore(join(api.dataDir, 'advisories.db'))
  await syncCsafProvider(mirror, { store })
  store.close()
  const feed = new AdvisoryFeed(api.dataDir)
  expect(await feed.refresh()).toBe(true)
  const entries = ['energy-1', 'energy-2', 'energy-3'].map((id, i) => ({ ...deviceCertificate({ id, kind: 'energy', site: 'depot' }, i + 1), vendor: 'Acme Metering', model: 'EM-400' }))
  api.inventory(entries)
  feed.setDevices(entries)
  api.detection.setAdvisories(feed.index)
  api.source.advisories = { list: () => feed.listing, productOf: (id) => feed.productOf(id), match: (p, fw) => feed.match(p, fw) }
  for (const [id, fw] of [['energy-1', '5.2.0'], ['energy-2', '5.2.8'], ['energy-3', '5.3.0']] as const) api.telemetry(telemetryPoint({ id, kind: 'energy', site: 'depot', fw }, ++seq, Date.now()))
  app = await buildApi(api.source, { logger: createLogger({ level: 'silent' }) })
})
afterAll(async () => {
  await app?.close()
  await api?.close()
})

const get = async (url: string) => (await app.inject({ url, headers: { authorization: `Bearer ${VIEWER}` } })).json<any>() // eslint-disable-line @typescript-eslint/no-explicit-any

describe('GET /api/advisories and the device view', () => {
  it('lists advisories with the devices each affects, most first', async () => {
    const body = await get('/api/advisories')
    expect(body.items.map((a: { id: string, affectedDevices: number, cvss: number }) => [a.id, a.affectedDevices, a.cvss])).toEqual([['ICSA-26-040-01', 2, 9.1], ['ICSA-26-040-02', 0, 4.3]])
  })

  it('shows a device\'s vendor, model and exposures; after a firmware update, the advisory as remediated', async () => {
    const before = await get('/api/devices/energy-1')
    expect(before).toMatchObject({ vendor: 'Acme Metering', model: 'EM-400', exposures: [{ advisory: 'ICSA-26-040-01', cves: ['CVE-2026-4001'], cvss: 9.1, confidence: 'high' }], remediated: [] })
    expect(before.alerts).toMatchObject([{ policy: 'firmware-vulnerable', evidence: { advisory: 'ICSA-26-040-01' } }])
    api.telemetry(telemetryPoint({ id: 'energy-1', kind: 'energy', site: 'depot', fw: '5.3.1' }, ++seq, Date.now()))
    const after = await get('/api/devices/energy-1')
    expect(after).toMatchObject({ exposures: [], remediated: [{ advisory: 'ICSA-26-040-01', fw: '5.2.0' }] })
    expect(after.alerts.filter((a: { policy: string }) => a.policy === 'firmware-vulnerable')).toEqual([])
    expect((await get('/api/advisories')).items[0]).toMatchObject({ id: 'ICSA-26-040-01', affectedDevices: 1 })
  })
})
