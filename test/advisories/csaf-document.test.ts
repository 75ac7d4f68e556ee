/**
 * Reading one CSAF 2.0 document (advisories/csaf-document.ts): the product
 * tree's other shapes (firmware installed_on a device by relationship,
 * full_product_names with a CPE, a product_name without version), status
 * across vulnerabilities, remediation order, and errors naming the field.
 */
import { describe, expect, it } from 'vitest'
import { parseCsaf } from '../../advisories/index.ts'
import { csafDocument } from '../helpers/csaf-provider.ts'

const base = () => csafDocument({ id: 'ICSA-26-060-01', title: 'Acme Metering EM-400', products: [{ vendor: 'Acme Metering', model: 'EM-400', ranges: ['<5'] }] }) as Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any

describe('parseCsaf', () => {
  it('reads relationships, CPE full product names and version-less products', () => {
    const doc = base()
    doc.product_tree = {
      branches: [{
        category: 'vendor', name: 'Acme Metering', branches: [
          { category: 'product_name', name: 'EM-400', product: { name: 'Acme EM-400', product_id: 'HW-EM400' } },
          { category: 'product_name', name: 'Meter firmware', branches: [{ category: 'product_version_range', name: 'vers:generic/<5.4.0', product: { name: 'fw <5.4.0', product_id: 'FW-OLD' } }] },
        ],
      }],
      full_product_names: [
        { name: 'Riverside FL 2 3.1', product_id: 'CPE-FL2', product_identification_helper: { cpe: 'cpe:2.3:h:riverside_sensors:fl_2:3.1:*:*:*:*:*:*:*' } },
        { name: 'Something without a CPE', product_id: 'NO-CPE' },
      ],
      relationships: [{ category: 'installed_on', product_reference: 'FW-OLD', relates_to_product_reference: 'HW-EM400', full_product_name: { name: 'fw <5.4.0 on EM-400', product_id: 'FW-OLD-ON-EM400' } }],
    }
    doc.vulnerabilities = [
      { cve: 'CVE-2026-6001', product_status: { known_affected: ['FW-OLD-ON-EM400', 'CPE-FL2', 'NO-CPE'], known_not_affected: ['HW-EM400'] }, remediations: [{ category: 'mitigation', details: 'Firewall it.', product_ids: ['CPE-FL2'] }, { category: 'vendor_fix', details: 'Update to 5.4.0.', product_ids: ['FW-OLD-ON-EM400'] }], scores: [{ cvss_v3: { baseScore: 6.1 }, products: ['CPE-FL2'] }] },
      { cve: 'CVE-2026-6002', product_status: { fixed: ['CPE-FL2'] }, scores: [{ cvss_v3: { baseScore: 9.0 }, products: ['FW-OLD-ON-EM400'] }] },
    ]
    const { advisory, warnings } = parseCsaf('2026/icsa-26-060-01.json', doc)
    expect(advisory).toMatchObject({ id: 'ICSA-26-060-01', cves: ['CVE-2026-6001', 'CVE-2026-6002'], cvss: 9.0, remediation: 'vendor_fix: Update to 5.4.0.\nmitigation: Firewall it.' })
    expect(advisory.products).toEqual([
      { vendor: 'Acme Metering', model: 'EM-400', version: null, range: 'vers:generic/<5.4.0', status: 'affected' },
      // Affected by one vulnerability, fixed for another: affected by the advisory.
      { vendor: 'riverside sensors', model: 'fl 2', version: '3.1', range: null, status: 'affected' },
      { vendor: 'Acme Metering', model: 'EM-400', version: null, range: null, status: 'not-affected' },
    ])
    expect(warnings).toEqual([
      expect.stringMatching(/product_tree\.full_product_names\[1\] \(NO-CPE\) has no CPE/),
      expect.stringMatching(/product NO-CPE has a status but no vendor and model/),
    ])
  })

  it('names the field at fault', () => {
    expect(() => parseCsaf('a.json', [])).toThrow('a.json: (document): must be an object')
    const wrongVersion = base()
    wrongVersion.document.csaf_version = '1.2'
    expect(() => parseCsaf('a.json', wrongVersion)).toThrow('a.json: document.csaf_version: is "1.2"; only CSAF 2.0 is read')
    const badCve = base()
    badCve.vulnerabilities[0].cve = 'CVE-XYZ'
    expect(() => parseCsaf('a.json', badCve)).toThrow('a.json: vulnerabilities[0].cve: "CVE-XYZ" is not a CVE id')
    const badBranch = base()
    badBranch.product_tree = { branches: [{ category: 'vendor', name: 7 }] }
    expect(() => parseCsaf('a.json', badBranch)).toThrow('a.json: product_tree.branches[0].name: must be a string')
  })
})
