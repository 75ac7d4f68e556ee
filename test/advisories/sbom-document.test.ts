/**
 * Reading and recording SBOMs (advisories/sbom-document.ts, sbom-record.ts,
 * the SQLite store): CycloneDX nested components and SPDX packages read;
 * a bad SBOM refused whole with its field named; recorded per vendor,
 * model and firmware with the store's revision moving only on a change;
 * an SBOM served over HTTP read once, when recorded.
 */
import { createServer, type Server } from 'node:http'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MAX_SBOM_BYTES, parseOsv, parseSbom, recordSbom, SqliteAdvisoryStore } from '../../advisories/index.ts'
import { MQTT_JS_GHSA, cycloneDx, spdx } from './sbom-fixtures.ts'

const bytes = (value: unknown): Buffer => Buffer.from(JSON.stringify(value))
const dir = mkdtempSync(join(tmpdir(), 'placeguard-sbom-'))
let server: Server
let baseUrl: string

beforeAll(async () => {
  server = createServer((request, response) => {
    if (request.url === '/gw7-2.1.0.cdx.json') response.end(JSON.stringify(cycloneDx('2.1.0', '3.5.1')))
    else response.writeHead(404).end()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve))
  rmSync(dir, { recursive: true, force: true })
})

describe('reading an SBOM', () => {
  it('takes CycloneDX components, nested ones too, and leaves out the firmware itself', () => {
    const parsed = parseSbom('gw7.cdx.json', bytes(cycloneDx('2.1.0', '3.5.1')))
    expect(parsed).toMatchObject({ format: 'cyclonedx', specVersion: '1.5' })
    expect(parsed.components).toEqual([
      { name: 'zephyr', version: '3.5.0', purl: 'pkg:github/zephyrproject-rtos/zephyr@v3.5.0' },
      { name: 'mbedtls', version: '3.5.1', purl: 'pkg:github/Mbed-TLS/mbedtls@v3.5.1' },
      { name: 'lwip', version: '2.1.3', purl: null },
      { name: 'mbedtls', version: '3.5.1', purl: 'pkg:conan/mbedtls@3.5.1' },
      { name: 'mqtt', version: '2.14.0', purl: 'pkg:npm/mqtt@2.14.0' },
    ])
  })

  it('takes SPDX packages with their purl, leaving out the package the document describes', () => {
    expect(parseSbom('gw7.spdx.json', bytes(spdx('1.9.4', '2.28.6')))).toMatchObject({
      format: 'spdx', specVersion: 'SPDX-2.3',
      components: [{ name: 'mbedtls', version: '2.28.6', purl: 'pkg:github/Mbed-TLS/mbedtls@v2.28.6' }, { name: 'lwip', version: '2.1.3', purl: null }],
    })
  })

  it('refuses a bad SBOM whole, naming the field', () => {
    const refused = (value: unknown) => {
      try {
        parseSbom('fw.json', Buffer.isBuffer(value) ? value : bytes(value))
      } catch (error) {
        return (error as Error).message
      }
      return 'accepted'
    }
    expect(refused(Buffer.from('<bom xmlns="http://cyclonedx.org/schema/bom/1.5"/>'))).toMatch(/^fw\.json: \(document\): is not JSON .*give a CycloneDX or SPDX JSON document/)
    expect(refused({ name: 'firmware' })).toBe('fw.json: bomFormat: is missing, and so is spdxVersion: not a CycloneDX or SPDX JSON document')
    expect(refused({ ...cycloneDx('1', '3.5.1'), specVersion: '1.3' })).toBe('fw.json: specVersion: is "1.3"; CycloneDX 1.4, 1.5, 1.6 are read')
    expect(refused({ ...spdx('1', '2.28.6'), spdxVersion: 'SPDX-3.0' })).toBe('fw.json: spdxVersion: is "SPDX-3.0"; SPDX-2.2 and SPDX-2.3 JSON are read')
    const unversioned = cycloneDx('1', '3.5.1') as { components: Array<{ components: Array<Record<string, unknown>> }> }
    delete unversioned.components[0]!.components[1]!.version
    expect(refused(unversioned)).toBe('fw.json: components[0].components[1].version: is missing for "lwip"; every component needs the version it is built in at')
    const noAssertion = spdx('1', '2.28.6') as { packages: Array<Record<string, unknown>> }
    noAssertion.packages[2]!.versionInfo = 'NOASSERTION'
    expect(refused(noAssertion)).toBe('fw.json: packages[2].versionInfo: is "NOASSERTION" for "lwip"; every package needs the version it is built in at')
    const badPurl = cycloneDx('1', '3.5.1') as { components: Array<Record<string, unknown>> }
    badPurl.components[2]!.purl = 'mqtt@2.14.0'
    expect(refused(badPurl)).toMatch(/^fw\.json: components\[2\]\.purl: "mqtt@2\.14\.0" is not a package URL/)
    expect(refused(Buffer.alloc(MAX_SBOM_BYTES + 1, 32))).toMatch(/an SBOM is read up to/)
  })
})

describe('recording SBOMs', () => {
  it('records one per vendor, model and firmware, from a file or a URL, moving the revision only on a change', async () => {
    const store = new SqliteAdvisoryStore(join(dir, 'advisories.db'))
    try {
      const file = join(dir, 'gw7-2.2.0.spdx.json')
      writeFileSync(file, JSON.stringify(spdx('2.2.0', '3.5.2')))
      const target = { vendor: 'Northgate Systems', model: 'GW-7', firmware: '2.2.0' }
      expect(await recordSbom(store, target, file, '2026-12-01T10:00:00.000Z')).toMatchObject({ result: 'new', format: 'spdx', components: 2, source: file })
      const revision = store.revision()
      expect(await recordSbom(store, { ...target, vendor: 'northgate systems', firmware: 'v2.2.0' }, file, '2026-12-01T10:01:00.000Z')).toMatchObject({ result: 'unchanged' })
      expect(store.revision()).toBe(revision)
      const url = `${baseUrl}/gw7-2.1.0.cdx.json`
      expect(await recordSbom(store, { ...target, firmware: '2.1.0' }, url, '2026-12-01T10:02:00.000Z')).toMatchObject({ result: 'new', format: 'cyclonedx', components: 5, source: url })
      expect(store.revision()).toBe(revision + 1)
      await expect(recordSbom(store, { ...target, firmware: '2.3.0' }, `${baseUrl}/missing.json`, '2026-12-01T10:03:00.000Z')).rejects.toThrow(/missing\.json: not found/)
      expect(store.sboms().map((s) => [s.firmware, s.format, s.components.length])).toEqual([['2.1.0', 'cyclonedx', 5], ['2.2.0', 'spdx', 2]])
      expect(store.removeSbom({ ...target, firmware: '2.1.0' })).toBe(true)
      expect(store.removeSbom({ ...target, firmware: '2.1.0' })).toBe(false)
      expect(store.revision()).toBe(revision + 2)
    } finally {
      store.close()
    }
  })

  it('keeps an OSV record\'s packages, and reads again the OSV records a store synced before it kept them', () => {
    const path = join(dir, 'old.db')
    let store = new SqliteAdvisoryStore(path)
    store.upsert(parseOsv('mqtt.json', MQTT_JS_GHSA).advisory, { provider: 'osv:dir', file: 'mqtt.json', sha256: 'abc' }, '2026-12-01T10:00:00.000Z')
    expect(store.list()[0]!.packages).toEqual([{ key: 'pkg:npm/mqtt', name: 'mqtt', ranges: [{ type: 'SEMVER', events: [{ introduced: '2.0.0' }, { fixed: '2.15.0' }] }], versions: [] }])
    store.close()
    // As a store from before SBOMs: no packages table.
    const db = new DatabaseSync(path)
    db.exec('DROP TABLE advisory_packages')
    db.close()
    store = new SqliteAdvisoryStore(path)
    expect(store.hashOf('osv:dir', 'mqtt.json')).toBe('')
    store.close()
  })
})
