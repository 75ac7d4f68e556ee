/**
 * SBOM components matched against OSV advisories, pure: real-shaped OSV
 * records (an NVD-converted C library record, a ConanCenter ECOSYSTEM
 * range, a GHSA SEMVER range) read by parseOsv, real-shaped CycloneDX and
 * SPDX SBOMs read by parseSbom, and the match index a collector builds
 * from them — what firmware-vulnerable and the API see.
 */
import { describe, expect, it } from 'vitest'
import { parseOsv, parseSbom } from '../../advisories/index.ts'
import { AdvisoryIndex, type FirmwareSbom, matchEvidence } from '../../shared/advisory-match.ts'
import { MBEDTLS_CONAN, MBEDTLS_NVD, MQTT_JS_GHSA, cycloneDx, spdx } from './sbom-fixtures.ts'

const gateway = { vendor: 'Northgate Systems', model: 'GW-7' }
const advisories = [MBEDTLS_NVD, MBEDTLS_CONAN, MQTT_JS_GHSA].map((record) => parseOsv(`${record.id}.json`, record).advisory)

function sbomOf (firmware: string, document: Record<string, unknown>): FirmwareSbom {
  return { ...gateway, firmware, components: parseSbom(`gw7-${firmware}.json`, Buffer.from(JSON.stringify(document))).components }
}

describe('OSV records as component packages', () => {
  it('keys packages by purl, by ecosystem and name, and a GIT-only entry by its repository', () => {
    expect(advisories.map((a) => a.packages?.map((p) => p.key))).toEqual([['pkg:github/mbed-tls/mbedtls'], ['pkg:conan/mbedtls'], ['pkg:npm/mqtt']])
    // GIT ranges name commits: not kept; the tags listed beside them are.
    expect(advisories[0]!.packages![0]).toMatchObject({ ranges: [], versions: ['mbedtls-2.28.5', 'mbedtls-2.28.6', 'v3.4.1', 'v3.5.0', 'v3.5.1'] })
    // A library is not a device: no product lines, and no warning that it is not <vendor>/<model>.
    expect(parseOsv('mqtt.json', MQTT_JS_GHSA)).toMatchObject({ advisory: { products: [] }, warnings: [] })
  })
})

describe('firmware matched through its SBOM', () => {
  const index = new AdvisoryIndex(advisories, [
    sbomOf('2.1.0', cycloneDx('2.1.0', '3.5.1')),
    sbomOf('2.2.0', cycloneDx('2.2.0', '3.5.2', '2.15.0')),
    sbomOf('1.9.4', spdx('1.9.4', '2.28.6')),
  ])

  it('names each advisory once, with the component, its fix and how sure the match is', () => {
    // Highest CVSS first (the OSV records' vectors are scored), then by id.
    const matches = index.match(gateway, '2.1.0')
    expect(matches.map((m) => [m.advisory.id, m.confidence, m.matched, m.component])).toEqual([
      ['GHSA-4wq8-g8p2-5wxr', 'high', 'SEMVER >=2.0.0 <2.15.0', { name: 'mqtt', version: '2.14.0', purl: 'pkg:npm/mqtt@2.14.0', fixed: '2.15.0' }],
      ['CVE-2024-23170', 'high', 'version v3.5.1', { name: 'mbedtls', version: '3.5.1', purl: 'pkg:github/Mbed-TLS/mbedtls@v3.5.1', fixed: null }],
      ['PGTEST-2024-23170', 'low', 'ECOSYSTEM >=3.0.0 <3.5.2', { name: 'mbedtls', version: '3.5.1', purl: 'pkg:conan/mbedtls@3.5.1', fixed: '3.5.2' }],
    ])
    expect(matchEvidence(matches)).toMatchObject({
      advisory: 'GHSA-4wq8-g8p2-5wxr', cves: 'CVE-2017-10910,CVE-2024-23170', cvss: 7.5, confidence: 'high',
      component: 'mqtt', componentVersion: '2.14.0', purl: 'pkg:npm/mqtt@2.14.0', fixedVersion: '2.15.0', remediation: 'update mqtt to 2.15.0 or later',
    })
  })

  it('matches nothing once a firmware update brings the fixed components, or for a firmware with no SBOM', () => {
    expect(index.match(gateway, '2.2.0')).toEqual([])
    expect(index.match(gateway, '2.3.0')).toEqual([])
    expect(index.match({ vendor: 'Northgate Systems', model: 'GW-8' }, '2.1.0')).toEqual([])
  })

  it('finds the SBOM whatever the case of the names or a leading v of the firmware', () => {
    expect(index.match({ vendor: 'northgate  systems', model: 'gw-7' }, 'v2.1.0')).toHaveLength(3)
  })

  it('reads SPDX: the described package is the firmware, a tag mbedtls-2.28.6 is version 2.28.6, the lower branch has its own fix', () => {
    expect(index.match(gateway, '1.9.4').map((m) => [m.advisory.id, m.matched, m.component?.purl])).toEqual([
      ['CVE-2024-23170', 'version mbedtls-2.28.6', 'pkg:github/Mbed-TLS/mbedtls@v2.28.6'],
    ])
  })
})
