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
 *
 * And through the firmware's SBOM, when one is recorded for the device's
 * vendor, model and firmware (docs/advisories.md#sboms): each component is
 * looked up by its package key among the advisories' OSV packages and
 * judged by component-match.ts; a hit names the component.
 */
import { type AdvisoryPackage, componentAffected, type SbomComponent } from './component-match.ts'
import { PackageUrlError, packageKey, parsePackageUrl } from './package-url.ts'
import { inRange, normaliseVersion, parseRange, sameVersion, type VersionRange } from './version-range.ts'

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
  /** The OSV packages it names (component-match.ts), matched against firmwares' SBOM components; absent for CSAF. */
  packages?: AdvisoryPackage[]
}

/** The SBOM recorded for one firmware of a product: what it is built from. */
export interface FirmwareSbom { vendor: string, model: string, firmware: string, components: SbomComponent[] }

/** The component of the firmware a match came through, and the version of it that fixes the advisory. */
export interface MatchedComponent { name: string, version: string, purl: string | null, fixed: string | null }

export interface AdvisoryMatch {
  advisory: Advisory
  confidence: MatchConfidence
  /** The affected version or range that held the firmware (or the component). */
  matched: string
  /** Set when the match is on a component of the firmware's SBOM rather than on the firmware itself. */
  component?: MatchedComponent
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
  /** OSV packages by package key, with their advisory. */
  readonly #byPackage = new Map<string, Array<{ advisory: Advisory, pkg: AdvisoryPackage }>>()
  /** SBOM components by product and firmware, each with its package key. */
  readonly #bySbom = new Map<string, Array<{ component: SbomComponent, key: string }>>()
  /** Component matches per SBOM, worked out on first ask: the index never changes, and firmware-vulnerable asks on every message. At most one entry per SBOM. */
  readonly #componentMatches = new Map<string, AdvisoryMatch[]>()
  readonly size: number

  constructor (advisories: readonly Advisory[], sboms: readonly FirmwareSbom[] = []) {
    this.size = advisories.length
    for (const advisory of advisories) {
      for (const pkg of advisory.packages ?? []) {
        const list = this.#byPackage.get(pkg.key)
        if (list) list.push({ advisory, pkg })
        else this.#byPackage.set(pkg.key, [{ advisory, pkg }])
      }
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
    for (const sbom of sboms) {
      const components = sbom.components.flatMap((component) => {
        const key = componentKey(component)
        return key === undefined ? [] : [{ component, key }]
      })
      this.#bySbom.set(sbomKey(sbom, sbom.firmware), components)
    }
  }

  /** The advisories affecting this firmware of this product, highest CVSS first. */
  match (device: DeviceProduct, firmware: string): AdvisoryMatch[] {
    if (firmware.trim() === '') return []
    const perAdvisory = this.#byProduct.get(productKey(device.vendor, device.model)) ?? new Map<Advisory, IndexedProduct[]>()
    const matches: AdvisoryMatch[] = []
    for (const [advisory, entries] of perAdvisory) {
      const match = matchEntries(entries, firmware)
      if (match) matches.push({ advisory, ...match })
    }
    this.#matchComponents(device, firmware, matches)
    return matches.sort((a, b) => (b.advisory.cvss ?? -1) - (a.advisory.cvss ?? -1) || a.advisory.id.localeCompare(b.advisory.id))
  }

  /** Whether an SBOM is recorded for this firmware of this product: whether its components are matched at all. */
  hasSbom (device: DeviceProduct, firmware: string): boolean {
    return this.#bySbom.has(sbomKey(device, firmware))
  }

  /** Advisories reaching the firmware through its SBOM's components: one match per advisory (high confidence first), none already matched on the firmware itself. */
  #matchComponents (device: DeviceProduct, firmware: string, matches: AdvisoryMatch[]): void {
    const key = sbomKey(device, firmware)
    let found = this.#componentMatches.get(key)
    if (!found) {
      const components = this.#bySbom.get(key)
      if (!components || this.#byPackage.size === 0) return
      found = this.#judgeComponents(components)
      this.#componentMatches.set(key, found)
    }
    const direct = new Set(matches.map((m) => m.advisory))
    for (const match of found) if (!direct.has(match.advisory)) matches.push(match)
  }

  #judgeComponents (components: ReadonlyArray<{ component: SbomComponent, key: string }>): AdvisoryMatch[] {
    const byAdvisory = new Map<Advisory, AdvisoryMatch>()
    for (const { component, key } of components) {
      for (const { advisory, pkg } of this.#byPackage.get(key) ?? []) {
        const hit = componentAffected(pkg, component.version)
        if (!hit) continue
        const known = byAdvisory.get(advisory)
        if (known && !(known.confidence === 'low' && hit.confidence === 'high')) continue
        byAdvisory.set(advisory, { advisory, confidence: hit.confidence, matched: hit.matched, component: { name: component.name, version: component.version, purl: component.purl, fixed: hit.fixed } })
      }
    }
    return [...byAdvisory.values()]
  }
}

/** A component's package key: from its purl, or `pkg:generic/<name>` without one; undefined for a purl that no longer parses. */
export function componentKey (component: SbomComponent): string | undefined {
  if (component.purl === null) return packageKey({ type: 'generic', namespace: null, name: component.name })
  try {
    return packageKey(parsePackageUrl(component.purl))
  } catch (error) {
    if (error instanceof PackageUrlError) return undefined // refused with its field when the SBOM was recorded
    throw error
  }
}

/**
 * Product and firmware as an SBOM is looked up (and stored) by: names as
 * normaliseName, a leading v of the firmware aside, case ignored. Joined by
 * the unit separator (U+001F), a control character no vendor or model may
 * hold (pki/device-products.ts), and which PostgreSQL text can store (NUL it cannot).
 */
export function sbomKey (device: DeviceProduct, firmware: string): string {
  return [normaliseName(device.vendor), normaliseName(device.model), normaliseVersion(firmware).toLowerCase()].join('\u001f')
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
    remediation: remediationOf(top),
    confidence: top.confidence,
    range: top.matched,
    ...(top.component ? { component: top.component.name, componentVersion: top.component.version, purl: top.component.purl, fixedVersion: top.component.fixed } : {}),
  }
}

/** What to do: the advisory's own remediation, or for a component match, the component's fixed version. */
export function remediationOf (match: AdvisoryMatch): string | null {
  if (match.advisory.remediation !== null || !match.component) return match.advisory.remediation
  const { name, fixed } = match.component
  return fixed === null ? `no fixed version of ${name} is published` : `update ${name} to ${fixed} or later`
}
