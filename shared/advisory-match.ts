/**
 * Which advisories affect a device, from its vendor, model and firmware:
 * a pure function over plain data, so the firmware-vulnerable rule
 * (policies/, which may open shared/ only) and the advisory store's
 * listing (advisories/) judge alike. The advisories themselves are read,
 * synced and stored in advisories/ (docs/advisories.md).
 *
 * Rules of a match, for one advisory:
 * - the vendor and model compare case-insensitively, whitespace
 *   collapsed;
 * - a product entry `fixed` or `not-affected` (CSAF VEX
 *   `known_not_affected`) whose version or range holds the firmware wins:
 *   no match, whatever an affected entry says;
 * - otherwise an `affected` entry whose exact version is the firmware
 *   matches with high confidence, a `vers:` range exactly (high), a
 *   vendor-style range best-effort (low).
 */
import { inRange, parseRange, sameVersion, type VersionRange } from './version-range.ts'

export type MatchConfidence = 'high' | 'low'
export type ProductStatus = 'affected' | 'not-affected' | 'fixed'

/** One product line of an advisory: a vendor's model at a version or in a range, and what the advisory says of it. */
export interface AdvisoryProduct {
  vendor: string
  model: string
  /** An exact version (`product_version`); null with a range. */
  version: string | null
  /** A range (`product_version_range`, vers: or vendor style); null with an exact version; both null: every version. */
  range: string | null
  status: ProductStatus
}

/** An advisory as matching and alerts need it. */
export interface Advisory {
  id: string
  title: string
  cves: string[]
  /** The highest CVSS v3 base score of its vulnerabilities; null when it gives none. */
  cvss: number | null
  /** What the supplier or coordinator says to do (vendor fixes first); null when it says nothing. */
  remediation: string | null
  products: AdvisoryProduct[]
}

export interface AdvisoryMatch {
  advisory: Advisory
  confidence: MatchConfidence
  /** The affected version or range that held the firmware. */
  matched: string
}

export interface DeviceProduct { vendor: string, model: string }

/** Vendor and model as compared: lower case, whitespace collapsed. */
export function normaliseName (name: string): string {
  return name.trim().replace(/\s+/g, ' ').toLowerCase()
}

interface IndexedProduct { product: AdvisoryProduct, range: VersionRange | undefined }

/**
 * The advisories by (vendor, model), built once per sync and asked per
 * telemetry message: a lookup and the few entries of that model, never a
 * scan of every advisory.
 */
export class AdvisoryIndex {
  readonly #byProduct = new Map<string, Map<Advisory, IndexedProduct[]>>()
  readonly size: number

  constructor (advisories: readonly Advisory[]) {
    this.size = advisories.length
    for (const advisory of advisories) {
      for (const product of advisory.products) {
        let range: VersionRange | undefined
        if (product.range !== null) {
          try {
            range = parseRange(product.range)
          } catch {
            continue // refused with its file and field at sync; a stored one that no longer parses matches nothing
          }
        }
        const key = productKey(product.vendor, product.model)
        let perAdvisory = this.#byProduct.get(key)
        if (!perAdvisory) this.#byProduct.set(key, perAdvisory = new Map())
        const list = perAdvisory.get(advisory)
        if (list) list.push({ product, range })
        else perAdvisory.set(advisory, [{ product, range }])
      }
    }
  }

  /** The advisories affecting this firmware of this product, highest CVSS first. */
  match (device: DeviceProduct, firmware: string): AdvisoryMatch[] {
    if (firmware.trim() === '') return []
    const perAdvisory = this.#byProduct.get(productKey(device.vendor, device.model))
    if (!perAdvisory) return []
    const matches: AdvisoryMatch[] = []
    for (const [advisory, entries] of perAdvisory) {
      const match = matchEntries(entries, firmware)
      if (match) matches.push({ advisory, ...match })
    }
    return matches.sort((a, b) => (b.advisory.cvss ?? -1) - (a.advisory.cvss ?? -1) || a.advisory.id.localeCompare(b.advisory.id))
  }
}

function productKey (vendor: string, model: string): string {
  return `${normaliseName(vendor)}\u0000${normaliseName(model)}`
}

function holds (entry: IndexedProduct, firmware: string): boolean {
  if (entry.product.version !== null) return sameVersion(entry.product.version, firmware)
  if (entry.range) return inRange(entry.range, firmware) === true
  return true
}

function matchEntries (entries: IndexedProduct[], firmware: string): { confidence: MatchConfidence, matched: string } | undefined {
  // VEX first: a version the advisory calls fixed or not affected is not affected, whatever a broad range says.
  if (entries.some((e) => e.product.status !== 'affected' && holds(e, firmware))) return undefined
  let best: { confidence: MatchConfidence, matched: string } | undefined
  for (const entry of entries) {
    if (entry.product.status !== 'affected' || !holds(entry, firmware)) continue
    const confidence: MatchConfidence = entry.product.version !== null || entry.range?.exact === true ? 'high' : 'low'
    const matched = entry.product.version ?? entry.product.range ?? '*'
    if (!best || (confidence === 'high' && best.confidence === 'low')) best = { confidence, matched }
  }
  return best
}

/** One match list as alert evidence: flat values (Evidence holds no arrays). */
export function matchEvidence (matches: readonly AdvisoryMatch[]): Record<string, string | number | null> {
  const top = matches[0]!
  const cves = [...new Set(matches.flatMap((m) => m.advisory.cves))]
  return {
    advisory: top.advisory.id,
    advisories: matches.map((m) => m.advisory.id).join(','),
    title: top.advisory.title,
    cves: cves.join(','),
    cvss: top.advisory.cvss,
    remediation: top.advisory.remediation,
    confidence: top.confidence,
    range: top.matched,
  }
}
