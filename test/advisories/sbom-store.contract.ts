/**
 * What every AdvisoryStore must do with SBOMs and OSV packages: run by
 * sbom-store.test.ts for SQLite and by test/db/pg-sbom-store.test.ts for
 * PostgreSQL, every store call awaited. An OSV record's packages come back
 * with it; an SBOM is recorded once per vendor, model and firmware (as
 * matching compares them), the same bytes again change nothing, another
 * replaces it; each change moves the revision collectors poll, and a
 * second store at the same place (another machine) sees it.
 */
import { describe, expect, it } from 'vitest'
import { type AdvisoryStore, type AsyncAdvisoryStore, parseOsv, parseSbom, type StoredSbom } from '../../advisories/index.ts'
import { type StorePlace, storesPerTest } from '../helpers/store-place.ts'
import { MBEDTLS_NVD, MQTT_JS_GHSA, cycloneDx, spdx } from './sbom-fixtures.ts'

const product = { vendor: 'Northgate Systems', model: 'GW-7' }

function sbom (firmware: string, document: Record<string, unknown>, source = `/srv/sboms/gw7-${firmware}.json`): StoredSbom {
  return { ...product, firmware, source, ...parseSbom(source, Buffer.from(JSON.stringify(document))) }
}

export function sbomStoreContract (name: string, newPlace: () => StorePlace<AdvisoryStore | AsyncAdvisoryStore>): void {
  describe(`AdvisoryStore SBOM contract: ${name}`, () => {
    const stores = storesPerTest(newPlace)

    it('keeps an OSV record\'s packages with it, replaced when the record is', async () => {
      const store = stores.open()
      expect(await store.upsert(parseOsv('mqtt.json', MQTT_JS_GHSA).advisory, { provider: 'osv:/srv/osv', file: 'mqtt.json', sha256: 'a' }, '2026-12-01T10:00:00.000Z')).toBe('new')
      expect(await store.upsert(parseOsv('mbedtls.json', MBEDTLS_NVD).advisory, { provider: 'osv:/srv/osv', file: 'mbedtls.json', sha256: 'b' }, '2026-12-01T10:00:00.000Z')).toBe('new')
      const widened = { ...MQTT_JS_GHSA, modified: '2024-01-01T00:00:00Z', affected: [{ ...MQTT_JS_GHSA.affected[0]!, ranges: [{ type: 'SEMVER', events: [{ introduced: '0' }, { fixed: '2.15.0' }] }] }] }
      expect(await store.upsert(parseOsv('mqtt.json', widened).advisory, { provider: 'osv:/srv/osv', file: 'mqtt.json', sha256: 'c' }, '2026-12-01T10:01:00.000Z')).toBe('updated')
      const listed = await store.list()
      expect(listed.map((a) => [a.id, a.packages])).toEqual([
        ['CVE-2024-23170', [{ key: 'pkg:github/mbed-tls/mbedtls', name: 'https://github.com/Mbed-TLS/mbedtls', ranges: [], versions: ['mbedtls-2.28.5', 'mbedtls-2.28.6', 'v3.4.1', 'v3.5.0', 'v3.5.1'] }]],
        ['GHSA-4wq8-g8p2-5wxr', [{ key: 'pkg:npm/mqtt', name: 'mqtt', ranges: [{ type: 'SEMVER', events: [{ introduced: '0' }, { fixed: '2.15.0' }] }], versions: [] }]],
      ])
    })

    it('records one SBOM per firmware of a product, moving the revision only on a change', async () => {
      const store = stores.open()
      const start = await store.revision()
      expect(await store.putSbom(sbom('2.1.0', cycloneDx('2.1.0', '3.5.1')), '2026-12-01T10:00:00.000Z')).toBe('new')
      expect(await store.putSbom(sbom('2.2.0', spdx('2.2.0', '3.5.2')), '2026-12-01T10:00:01.000Z')).toBe('new')
      expect(await store.revision()).toBe(start + 2)
      // The same bytes from the same place, named as devices may spell it: nothing changes.
      expect(await store.putSbom({ ...sbom('2.1.0', cycloneDx('2.1.0', '3.5.1')), vendor: 'NORTHGATE  systems', firmware: 'v2.1.0' }, '2026-12-01T10:00:02.000Z')).toBe('unchanged')
      expect(await store.revision()).toBe(start + 2)
      expect(await store.putSbom(sbom('2.1.0', cycloneDx('2.1.0', '3.5.2')), '2026-12-01T10:00:03.000Z')).toBe('updated')
      expect(await store.revision()).toBe(start + 3)

      // Another machine at the same place sees what was recorded.
      const other = stores.open()
      const listed = await other.sboms()
      expect(listed.map((s) => [s.vendor, s.model, s.firmware, s.format, s.specVersion, s.components.length, s.recordedAt])).toEqual([
        ['Northgate Systems', 'GW-7', '2.1.0', 'cyclonedx', '1.5', 5, '2026-12-01T10:00:03.000Z'],
        ['Northgate Systems', 'GW-7', '2.2.0', 'spdx', 'SPDX-2.3', 2, '2026-12-01T10:00:01.000Z'],
      ])
      expect(listed[0]!.components[1]).toEqual({ name: 'mbedtls', version: '3.5.2', purl: 'pkg:github/Mbed-TLS/mbedtls@v3.5.2' })

      expect(await other.removeSbom({ ...product, firmware: '2.2.0' })).toBe(true)
      expect(await other.removeSbom({ ...product, firmware: '2.2.0' })).toBe(false)
      expect(await store.revision()).toBe(start + 4)
      expect((await store.sboms()).map((s) => s.firmware)).toEqual(['2.1.0'])
    })
  })
}
