/**
 * CSAF advisories and a provider's layout, built by the tests in the shape
 * CISA publishes (cisagov/CSAF, csaf_files/OT/white/<year>/icsa-….json):
 * vendor → product_name → product_version(_range) branches, CVEs, CVSS v3
 * scores, product_status and remediations; beside each file its .sha256
 * and .sha512, and index.txt and changes.csv in the distribution directory.
 */
import { createHash } from 'node:crypto'
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'

export interface ProductSpec {
  vendor: string
  model: string
  /** `product_version` names, or `product_version_range` names. */
  versions?: string[]
  ranges?: string[]
  status?: 'known_affected' | 'known_not_affected' | 'fixed'
}

export interface AdvisorySpec {
  id: string
  title?: string
  cves?: string[]
  cvss?: number[]
  remediation?: string
  products: ProductSpec[]
  version?: string
}

/** A CSAF 2.0 document as CISA writes one. */
export function csafDocument (spec: AdvisorySpec): Record<string, unknown> {
  let n = 0
  const byStatus = new Map<string, string[]>()
  const vendors = new Map<string, Array<Record<string, unknown>>>()
  for (const product of spec.products) {
    const leaves = [
      ...(product.versions ?? []).map((name) => ({ category: 'product_version', name })),
      ...(product.ranges ?? []).map((name) => ({ category: 'product_version_range', name })),
    ].map((leaf) => {
      const id = `CSAFPID-${String(++n).padStart(4, '0')}`
      const status = product.status ?? 'known_affected'
      byStatus.set(status, [...(byStatus.get(status) ?? []), id])
      return { ...leaf, product: { name: `${product.vendor} ${product.model}: ${leaf.name}`, product_id: id } }
    })
    const list = vendors.get(product.vendor) ?? []
    list.push({ branches: leaves, category: 'product_name', name: product.model })
    vendors.set(product.vendor, list)
  }
  const affected = byStatus.get('known_affected') ?? []
  const cvss = spec.cvss ?? [7.5]
  return {
    document: {
      category: 'csaf_security_advisory',
      csaf_version: '2.0',
      distribution: { text: 'Disclosure is not limited', tlp: { label: 'WHITE', url: 'https://us-cert.cisa.gov/tlp/' } },
      lang: 'en-US',
      publisher: { category: 'coordinator', contact_details: 'central@cisa.dhs.gov', name: 'CISA', namespace: 'https://www.cisa.gov/' },
      title: spec.title ?? `${spec.products[0]!.vendor} ${spec.products[0]!.model}`,
      tracking: {
        current_release_date: '2026-01-11T07:00:00.000000Z',
        generator: { engine: { name: 'CISA CSAF Generator', version: '1.0.0' } },
        id: spec.id,
        initial_release_date: '2026-01-11T07:00:00.000000Z',
        revision_history: [{ date: '2026-01-11T07:00:00.000000Z', legacy_version: 'Initial', number: '1', summary: 'Initial Publication' }],
        status: 'final',
        version: spec.version ?? '1',
      },
    },
    product_tree: { branches: [...vendors].map(([name, branches]) => ({ branches, category: 'vendor', name })) },
    vulnerabilities: (spec.cves ?? ['CVE-2026-0001']).map((cve, i) => ({
      cve,
      cwe: { id: 'CWE-798', name: 'Use of Hard-coded Credentials' },
      notes: [{ category: 'summary', text: 'The affected product uses hard-coded credentials.', title: 'Vulnerability Summary' }],
      product_status: Object.fromEntries([...byStatus].filter(([status]) => status !== 'known_affected' || affected.length > 0)),
      remediations: affected.length === 0 ? [] : [{ category: 'vendor_fix', details: spec.remediation ?? 'Update to the latest firmware.', product_ids: affected }],
      scores: affected.length === 0 ? [] : [{ cvss_v3: { baseScore: cvss[i] ?? cvss[0], baseSeverity: 'HIGH', vectorString: 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H', version: '3.1' }, products: affected }],
    })),
  }
}

export interface ProviderFile { path: string, content: string | Buffer, changed?: string }

/**
 * Writes a provider as it publishes itself: `<root>/provider-metadata.json`
 * (canonical_url under `base`), the distribution directory `white/` with
 * index.txt, changes.csv, and each `<year>/<file>.json` with .sha256 and
 * .sha512. `tamper` files get a hash that does not match.
 */
export function writeProvider (root: string, base: string, files: ProviderFile[], options: { tamper?: string[], noHash?: string[] } = {}): void {
  mkdirSync(join(root, 'white'), { recursive: true })
  writeFileSync(join(root, 'provider-metadata.json'), JSON.stringify({
    canonical_url: `${base}/provider-metadata.json`,
    distributions: [{ directory_url: `${base}/white/` }],
    last_updated: '2026-01-11T07:00:00.000Z',
    list_on_CSAF_aggregators: true,
    metadata_version: '2.0',
    mirror_on_CSAF_aggregators: true,
    public_openpgp_keys: [],
    publisher: { category: 'coordinator', name: 'CISA', namespace: 'https://www.cisa.gov/' },
    role: 'csaf_trusted_provider',
  }, null, 2))
  for (const file of files) {
    const path = join(root, 'white', file.path)
    mkdirSync(dirname(path), { recursive: true })
    writeFileSync(path, file.content)
    if (options.noHash?.includes(file.path)) continue
    const name = file.path.slice(file.path.lastIndexOf('/') + 1)
    const tampered = options.tamper?.includes(file.path)
    const sha256 = createHash('sha256').update(tampered ? 'not the file' : file.content).digest('hex')
    const sha512 = createHash('sha512').update(file.content).digest('hex')
    writeFileSync(`${path}.sha256`, `${sha256}  ${name}\n`)
    writeFileSync(`${path}.sha512`, `${sha512}  ${name}\n`)
  }
  writeFileSync(join(root, 'white', 'index.txt'), files.map((f) => f.path).join('\n') + '\n')
  writeFileSync(join(root, 'white', 'changes.csv'), files.map((f) => `"${f.path}","${f.changed ?? '2026-01-11T07:00:00.000Z'}"`).join('\n') + '\n')
}

export function advisoryFile (spec: AdvisorySpec, changed?: string): ProviderFile {
  return { path: `2026/${spec.id.toLowerCase()}.json`, content: JSON.stringify(csafDocument(spec), null, 2), changed }
}
