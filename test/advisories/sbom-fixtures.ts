/**
 * Advisories and SBOMs of the shapes real ones have, for the SBOM tests:
 * - an OSV record as osv.dev converts an NVD CVE for a C library (no
 *   package: a GIT range on the repository and a `versions` list of its
 *   tags), for Mbed TLS's RSA timing side channel (CVE-2024-23170: 2.x
 *   before 2.28.7, 3.x before 3.5.2);
 * - the same library as a ConanCenter package with an ECOSYSTEM range;
 * - a GitHub-reviewed advisory (GHSA shape: SEMVER range, CVSS vector,
 *   `database_specific.severity`) for the npm `mqtt` client
 *   (CVE-2017-10910: 2.x before 2.15.0);
 * - a CycloneDX 1.5 SBOM of a gateway firmware (an RTOS with nested
 *   components) and an SPDX 2.3 one as Zephyr's west spdx writes it.
 * Ids of the GHSA and the commit hashes are made up, in the real format.
 */

export const MBEDTLS_NVD = {
  schema_version: '1.6.0',
  id: 'CVE-2024-23170',
  modified: '2024-11-21T08:57:03Z',
  published: '2024-01-31T10:15:09Z',
  aliases: [],
  details: 'An issue was discovered in Mbed TLS 2.x before 2.28.7 and 3.x before 3.5.2. There was a timing side channel in RSA private operations.',
  severity: [{ type: 'CVSS_V3', score: 'CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:N' }],
  affected: [{
    ranges: [{
      type: 'GIT',
      repo: 'https://github.com/Mbed-TLS/mbedtls',
      events: [{ introduced: '0' }, { fixed: '2b3f3a9c1d7e4f5a6b7c8d9e0f1a2b3c4d5e6f70' }, { fixed: '8c1d7e4f5a6b7c8d9e0f1a2b3c4d5e6f702b3f3a' }],
    }],
    versions: ['mbedtls-2.28.5', 'mbedtls-2.28.6', 'v3.4.1', 'v3.5.0', 'v3.5.1'],
    database_specific: { source: 'https://storage.googleapis.com/cve-osv-conversion/osv-output/CVE-2024-23170.json' },
  }],
  references: [{ type: 'ADVISORY', url: 'https://mbed-tls.readthedocs.io/en/latest/security-advisories/mbedtls-security-advisory-2024-01-2/' }],
}

export const MBEDTLS_CONAN = {
  schema_version: '1.6.0',
  id: 'PGTEST-2024-23170',
  modified: '2024-02-02T00:00:00Z',
  summary: 'Timing side channel in RSA private operations (Mbed TLS)',
  aliases: ['CVE-2024-23170'],
  affected: [{
    package: { ecosystem: 'ConanCenter', name: 'mbedtls', purl: 'pkg:conan/mbedtls' },
    ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed: '2.28.7' }, { introduced: '3.0.0' }, { fixed: '3.5.2' }] }],
  }],
  database_specific: { cvss_score: 5.9 },
}

export const MQTT_JS_GHSA = {
  schema_version: '1.4.0',
  id: 'GHSA-4wq8-g8p2-5wxr',
  modified: '2023-09-13T21:47:36Z',
  published: '2018-07-24T20:13:38Z',
  aliases: ['CVE-2017-10910'],
  summary: 'Denial of Service in mqtt',
  details: 'MQTT.js 2.x.x prior to 2.15.0 issue in handling PUBLISH tickets may lead to an attacker causing a denial-of-service condition.',
  severity: [{ type: 'CVSS_V3', score: 'CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H' }],
  affected: [{
    package: { ecosystem: 'npm', name: 'mqtt' },
    ranges: [{ type: 'SEMVER', events: [{ introduced: '2.0.0' }, { fixed: '2.15.0' }] }],
    database_specific: { source: 'https://github.com/github/advisory-database/blob/main/advisories/github-reviewed/2018/07/GHSA-4wq8-g8p2-5wxr/GHSA-4wq8-g8p2-5wxr.json' },
  }],
  database_specific: { cwe_ids: ['CWE-400'], github_reviewed: true, severity: 'HIGH', cvss_score: 7.5 },
}

/** A CycloneDX 1.5 SBOM of a gateway firmware: the RTOS with its bundled libraries nested inside it. */
export function cycloneDx (firmware: string, mbedtls: string, mqtt = '2.14.0'): Record<string, unknown> {
  return {
    $schema: 'http://cyclonedx.org/schema/bom-1.5.schema.json',
    bomFormat: 'CycloneDX',
    specVersion: '1.5',
    serialNumber: 'urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79',
    version: 1,
    metadata: {
      timestamp: '2026-11-02T09:00:00Z',
      component: { type: 'firmware', 'bom-ref': 'fw', name: 'GW-7 gateway firmware', version: firmware },
    },
    components: [
      {
        type: 'operating-system', 'bom-ref': 'zephyr', name: 'zephyr', version: '3.5.0', purl: 'pkg:github/zephyrproject-rtos/zephyr@v3.5.0',
        components: [
          { type: 'library', 'bom-ref': 'mbedtls', name: 'mbedtls', version: mbedtls, purl: `pkg:github/Mbed-TLS/mbedtls@v${mbedtls}` },
          { type: 'library', 'bom-ref': 'lwip', name: 'lwip', version: '2.1.3' },
        ],
      },
      { type: 'library', 'bom-ref': 'mbedtls-conan', name: 'mbedtls', version: mbedtls, purl: `pkg:conan/mbedtls@${mbedtls}` },
      { type: 'library', 'bom-ref': 'mqtt', name: 'mqtt', version: mqtt, purl: `pkg:npm/mqtt@${mqtt}` },
    ],
    dependencies: [{ ref: 'fw', dependsOn: ['zephyr', 'mqtt'] }],
  }
}

/** An SPDX 2.3 document as Zephyr's `west spdx` writes one: the firmware package it describes, and its sources' packages with purls. */
export function spdx (firmware: string, mbedtls: string): Record<string, unknown> {
  return {
    spdxVersion: 'SPDX-2.3',
    dataLicense: 'CC0-1.0',
    SPDXID: 'SPDXRef-DOCUMENT',
    name: 'gw7-firmware',
    documentNamespace: 'https://example.org/spdx/gw7-firmware-1',
    creationInfo: { created: '2026-11-02T09:00:00Z', creators: ['Tool: Zephyr SPDX builder'] },
    packages: [
      { SPDXID: 'SPDXRef-firmware', name: 'gw7-firmware', versionInfo: firmware, downloadLocation: 'NOASSERTION' },
      {
        SPDXID: 'SPDXRef-mbedtls', name: 'mbedtls', versionInfo: mbedtls, downloadLocation: 'https://github.com/Mbed-TLS/mbedtls',
        externalRefs: [
          { referenceCategory: 'SECURITY', referenceType: 'cpe23Type', referenceLocator: `cpe:2.3:a:arm:mbed_tls:${mbedtls}:*:*:*:*:*:*:*` },
          { referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: `pkg:github/Mbed-TLS/mbedtls@v${mbedtls}` },
        ],
      },
      { SPDXID: 'SPDXRef-lwip', name: 'lwip', versionInfo: '2.1.3', downloadLocation: 'NOASSERTION' },
    ],
    relationships: [
      { spdxElementId: 'SPDXRef-DOCUMENT', relationshipType: 'DESCRIBES', relatedSpdxElement: 'SPDXRef-firmware' },
      { spdxElementId: 'SPDXRef-firmware', relationshipType: 'CONTAINS', relatedSpdxElement: 'SPDXRef-mbedtls' },
    ],
  }
}
