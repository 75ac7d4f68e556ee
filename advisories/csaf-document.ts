/**
 * One CSAF 2.0 document (OASIS CSAF v2.0, §3) read into what matching
 * needs: `document.tracking.id` and `.title`; the product tree's branches
 * (vendor → product_name → product_version / product_version_range),
 * `full_product_names` (by their CPE, when they carry one) and
 * `relationships` (firmware `installed_on` a device model: the model's
 * vendor and name, the firmware's version); every vulnerability's CVE,
 * CVSS v3 base score, product status (known_affected, first/last_affected,
 * known_not_affected, fixed, first_fixed) and remediations.
 *
 * A document is untrusted input: every field is checked before it is used,
 * and an error names the file and the field (`vulnerabilities[2].scores[0]
 * .cvss_v3.baseScore`). A product line whose range cannot be read is left
 * out with a warning naming its field; the rest of the advisory stands.
 */
import type { Advisory, AdvisoryProduct, ProductStatus } from '../shared/advisory-match.ts'
import { parseRange, VersionRangeError } from '../shared/version-range.ts'
import { AdvisoryInputError, type Field, objectAt, optionalArrayAt, optionalObjectAt, optionalStringAt, stringAt } from './input.ts'

/** An advisory as stored: what matching needs, and what says whether a later copy is newer. */
export interface StoredAdvisory extends Advisory {
  /** `document.tracking.version` (CSAF) or `modified` (OSV). */
  revision: string
  /** `document.tracking.current_release_date` (CSAF) or `modified` (OSV), ISO 8601. */
  releasedAt: string
  /** `csaf` or `osv`. */
  format: 'csaf' | 'osv'
  /** The CVSS vector behind `cvss` (or, for an OSV record with only a CVSS v4 vector, that vector and no score); null when none is given. */
  cvssVector?: string | null
}

export interface ParsedAdvisory { advisory: StoredAdvisory, warnings: string[] }

/** Remediation text kept per advisory, at most: a page, not a manual. */
const MAX_REMEDIATION = 4_000
const MAX_BRANCH_DEPTH = 30
const MAX_PRODUCTS = 20_000
const REMEDIATION_ORDER = ['vendor_fix', 'mitigation', 'workaround', 'none_available', 'no_fix_planned']

interface ProductLine { vendor: string, model: string, version: string | null, range: string | null }

export function parseCsaf (file: string, value: unknown): ParsedAdvisory {
  const root: Field = { file, path: '', value }
  const top = objectAt(root, '')
  const document = objectAt(top, 'document')
  const csafVersion = stringAt(document, 'csaf_version')
  if (csafVersion.value !== '2.0') throw new AdvisoryInputError(csafVersion, `is "${csafVersion.value}"; only CSAF 2.0 is read`)
  const tracking = objectAt(document, 'tracking')
  const id = stringAt(tracking, 'id').value.trim()
  if (id === '' || id.length > 200) throw new AdvisoryInputError({ file, path: 'document.tracking.id' }, 'must be 1 to 200 characters')
  const title = stringAt(document, 'title').value.slice(0, 500)
  const revision = stringAt(tracking, 'version').value
  const releasedAt = stringAt(tracking, 'current_release_date').value
  const warnings: string[] = []
  const products = new Map<string, ProductLine>()

  const tree = optionalObjectAt(top, 'product_tree')
  if (tree) {
    const branches = optionalArrayAt(tree, 'branches')
    if (branches) walkBranches(branches, {}, products, warnings, 0)
    const full = optionalArrayAt(tree, 'full_product_names')
    if (full) for (const item of full.items) fromFullProductName(objectAt(item, ''), products, warnings)
    const relationships = optionalArrayAt(tree, 'relationships')
    if (relationships) {
      for (const item of relationships.items) {
        const relationship = objectAt(item, '')
        const category = stringAt(relationship, 'category').value
        const name = objectAt(relationship, 'full_product_name')
        const productId = stringAt(name, 'product_id').value
        const firmware = products.get(stringAt(relationship, 'product_reference').value)
        const device = products.get(stringAt(relationship, 'relates_to_product_reference').value)
        // Firmware installed on (or a default component of) a device model: the device's vendor and name, the firmware's version.
        if (firmware && device && (category === 'installed_on' || category === 'default_component_of' || category === 'installed_with')) {
          products.set(productId, { vendor: device.vendor, model: device.model, version: firmware.version, range: firmware.range })
        }
      }
    }
  }
  if (products.size > MAX_PRODUCTS) throw new AdvisoryInputError({ file, path: 'product_tree' }, `names ${products.size} products; at most ${MAX_PRODUCTS} are read`)

  const cves = new Set<string>()
  let cvss: number | null = null
  let cvssVector: string | null = null
  const statusOf = new Map<string, ProductStatus>()
  const remediations: Array<{ category: string, details: string }> = []
  const vulnerabilities = optionalArrayAt(top, 'vulnerabilities')
  for (const item of vulnerabilities?.items ?? []) {
    const vulnerability = objectAt(item, '')
    const cve = optionalStringAt(vulnerability, 'cve')
    if (cve) {
      if (!/^CVE-\d{4}-\d{4,}$/.test(cve.value)) throw new AdvisoryInputError(cve, `"${cve.value.slice(0, 40)}" is not a CVE id (CVE-YYYY-NNNN)`)
      cves.add(cve.value)
    }
    for (const scoreItem of optionalArrayAt(vulnerability, 'scores')?.items ?? []) {
      const v3 = optionalObjectAt(objectAt(scoreItem, ''), 'cvss_v3')
      if (!v3) continue
      const base = v3.value as Record<string, unknown>
      const score = base.baseScore
      if (typeof score !== 'number' || !(score >= 0 && score <= 10)) throw new AdvisoryInputError({ file, path: `${v3.path}.baseScore` }, 'must be a number from 0 to 10')
      if (cvss === null || score > cvss) cvssVector = typeof base.vectorString === 'string' ? base.vectorString.slice(0, 200) : null
      cvss = Math.max(cvss ?? 0, score)
    }
    const status = optionalObjectAt(vulnerability, 'product_status')
    if (status) {
      // A product affected by any vulnerability of the advisory is affected by the advisory; fixed or not
      // affected only when no vulnerability says otherwise. (A version the advisory calls fixed or not
      // affected still wins over another product line's broad range: shared/advisory-match.ts.)
      const mark = (key: string, as: ProductStatus): void => {
        for (const ref of optionalArrayAt(status, key)?.items ?? []) {
          const productId = stringAt(ref, '').value
          if (as === 'affected' || !statusOf.has(productId)) statusOf.set(productId, as)
        }
      }
      mark('known_affected', 'affected'); mark('first_affected', 'affected'); mark('last_affected', 'affected')
      mark('fixed', 'fixed'); mark('first_fixed', 'fixed'); mark('known_not_affected', 'not-affected')
    }
    for (const remediationItem of optionalArrayAt(vulnerability, 'remediations')?.items ?? []) {
      const remediation = objectAt(remediationItem, '')
      remediations.push({ category: stringAt(remediation, 'category').value, details: stringAt(remediation, 'details').value })
    }
  }

  const lines: AdvisoryProduct[] = []
  for (const [productId, status] of statusOf) {
    const line = products.get(productId)
    if (!line) {
      if (warnings.some((w) => w.includes(`product ${productId} not matched`))) continue // its range was named already
      warnings.push(`${file}: product ${productId} has a status but no vendor and model in product_tree; not matched`)
      continue
    }
    lines.push({ ...line, status })
  }
  return {
    advisory: { id, title, cves: [...cves], cvss, remediation: remediationText(remediations), products: lines, revision, releasedAt, format: 'csaf', cvssVector },
    warnings,
  }
}

function remediationText (remediations: Array<{ category: string, details: string }>): string | null {
  const rank = (category: string): number => {
    const i = REMEDIATION_ORDER.indexOf(category)
    return i === -1 ? REMEDIATION_ORDER.length : i
  }
  const unique = [...new Map(remediations.sort((a, b) => rank(a.category) - rank(b.category)).map((r) => [r.details.trim(), r])).values()]
  const text = unique.map((r) => `${r.category}: ${r.details.trim()}`).join('\n')
  return text === '' ? null : text.slice(0, MAX_REMEDIATION)
}

interface BranchContext { vendor?: string, model?: string }

function walkBranches (branches: Field & { items: Field[] }, context: BranchContext, products: Map<string, ProductLine>, warnings: string[], depth: number): void {
  if (depth > MAX_BRANCH_DEPTH) throw new AdvisoryInputError(branches, `nests deeper than ${MAX_BRANCH_DEPTH} branches`)
  for (const item of branches.items) {
    const branch = objectAt(item, '')
    const category = stringAt(branch, 'category').value
    const name = stringAt(branch, 'name').value
    const here: BranchContext = { ...context }
    if (category === 'vendor') here.vendor = name
    else if (category === 'product_name') here.model = name
    else if (category === 'product_family' && here.model === undefined) here.model = name
    const product = optionalObjectAt(branch, 'product')
    if (product) {
      const productId = stringAt(product, 'product_id').value
      if (here.vendor === undefined || here.model === undefined) {
        warnings.push(`${branch.file}: ${branch.path} names product ${productId} outside a vendor and product_name branch; not matched`)
      } else if (category === 'product_version') {
        products.set(productId, { vendor: here.vendor, model: here.model, version: name, range: null })
      } else if (category === 'product_version_range') {
        try {
          parseRange(name)
          products.set(productId, { vendor: here.vendor, model: here.model, version: null, range: name })
        } catch (error) {
          if (!(error instanceof VersionRangeError)) throw error
          warnings.push(`${branch.file}: ${branch.path}.name: ${error.message}; product ${productId} not matched`)
        }
      } else if (category === 'product_name') {
        // A product without a version: the advisory speaks of every version of it.
        products.set(productId, { vendor: here.vendor, model: here.model, version: null, range: null })
      }
    }
    const children = optionalArrayAt(branch, 'branches')
    if (children) walkBranches(children, here, products, warnings, depth + 1)
  }
}

/** A full product name with a CPE 2.3 (`cpe:2.3:h:vendor:product:version:…`) gives vendor, model and version; without one it cannot be matched. */
function fromFullProductName (name: Field, products: Map<string, ProductLine>, warnings: string[]): void {
  const productId = stringAt(name, 'product_id').value
  const helper = optionalObjectAt(name, 'product_identification_helper')
  const cpe = helper ? optionalStringAt(helper, 'cpe') : undefined
  const parts = cpe?.value.split(':')
  if (!parts || parts[0] !== 'cpe' || parts[1] !== '2.3' || parts.length < 6) {
    if (!products.has(productId)) warnings.push(`${name.file}: ${name.path} (${productId}) has no CPE to tell its vendor and model; not matched`)
    return
  }
  const unescape = (s: string): string => s.replace(/\\(.)/g, '$1').replace(/_/g, ' ')
  const version = parts[5] === '*' || parts[5] === '-' ? null : unescape(parts[5]!)
  products.set(productId, { vendor: unescape(parts[3]!), model: unescape(parts[4]!), version, range: null })
}
