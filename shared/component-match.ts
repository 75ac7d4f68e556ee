/**
 * Whether a firmware's component (a library named in its SBOM, at a
 * version) is affected by an OSV `affected` entry, as the OSV schema's
 * evaluation section says (ossf/osv-schema docs/schema.md#evaluation):
 * a version listed in `versions`, or inside any range — events sorted by
 * version, `introduced` opening, `fixed` and `last_affected` closing,
 * `limit` bounding the range from above.
 *
 * How sure a match is follows what the order is:
 * - `versions`: equality, high confidence;
 * - `SEMVER`: semver precedence (SemVer 2.0 §11, pre-releases below their
 *   release), exact, high — unless the component's version is not semver,
 *   when the generic order of version-range.ts reads it, low;
 * - `ECOSYSTEM`: each ecosystem orders versions its own way (PEP 440, dpkg,
 *   Maven…); the generic order is close for dotted numbers, low;
 * - `GIT`: commits, which need the repository's history: never matched
 *   (the `versions` list beside it, tags, is).
 */
import semver from 'semver'
import { compareGeneric, normaliseVersion } from './version-range.ts'

export type OsvEvent = { introduced: string } | { fixed: string } | { last_affected: string } | { limit: string }
export interface OsvRange { type: 'SEMVER' | 'ECOSYSTEM', events: OsvEvent[] }

/** One OSV `affected` entry as stored: the package it names (its key, package-url.ts) and where it is affected. */
export interface AdvisoryPackage {
  /** What a component is compared by (osvPackageKey / repositoryKey). */
  key: string
  /** The name to show: the OSV package name, or the repository. */
  name: string
  ranges: OsvRange[]
  /** Affected versions listed one by one (OSV `versions`, often git tags). */
  versions: string[]
}

/** A component of a firmware, as its SBOM names it. */
export interface SbomComponent {
  name: string
  version: string
  /** As written in the SBOM; null when it gave none (keyed as pkg:generic/<name>). */
  purl: string | null
}

export interface ComponentHit {
  confidence: 'high' | 'low'
  /** The interval or listed version that held, e.g. `SEMVER >=3.0.0 <3.5.2`. */
  matched: string
  /** The lowest `fixed` above the component's version: what to update it to; null when none is published. */
  fixed: string | null
}

/** The entry's verdict on this version of the component; undefined when it is not affected. */
export function componentAffected (pkg: AdvisoryPackage, version: string): ComponentHit | undefined {
  let best: ComponentHit | undefined
  const listed = pkg.versions.find((v) => sameTag(v, version, pkg.name))
  if (listed !== undefined) best = { confidence: 'high', matched: `version ${listed}`, fixed: null }
  for (const range of pkg.ranges) {
    const hit = inOsvRange(range, version)
    if (hit && (!best || (best.confidence === 'low' && hit.confidence === 'high') || (best.fixed === null && hit.fixed !== null && best.confidence === hit.confidence))) best = hit
  }
  if (best && best.fixed === null) best = { ...best, fixed: lowestFixedAbove(pkg, version) }
  return best
}

/** A listed version is the component's version when equal, a leading v aside, or as a tag `<name>-<version>` (mbedtls-3.5.1). */
function sameTag (listed: string, version: string, name: string): boolean {
  const bare = (v: string): string => normaliseVersion(v.trim().replace(new RegExp(`^${escape(lastSegment(name))}[-_]`, 'i'), '')).toLowerCase()
  return bare(listed) === bare(version)
}

function lastSegment (name: string): string {
  return name.slice(name.lastIndexOf('/') + 1)
}

function escape (text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

interface Ordered { compare: (a: string, b: string) => number, confidence: 'high' | 'low' }

function orderFor (range: OsvRange, version: string): Ordered {
  if (range.type === 'SEMVER' && semver.valid(normaliseVersion(version))) {
    return {
      confidence: 'high',
      // A bound that is not semver (a record's mistake) compares by the generic order rather than throwing.
      compare: (a, b) => {
        const x = semver.valid(normaliseVersion(a))
        const y = semver.valid(normaliseVersion(b))
        return x && y ? semver.compare(x, y) : compareGeneric(a, b)
      },
    }
  }
  return { confidence: 'low', compare: compareGeneric }
}

const eventVersion = (event: OsvEvent): string => Object.values(event)[0] as string

/** The schema's IncludedInRanges for one range, saying which interval held and its fix. */
function inOsvRange (range: OsvRange, version: string): ComponentHit | undefined {
  const { compare, confidence } = orderFor(range, version)
  const limits = range.events.filter((e) => 'limit' in e)
  if (limits.length > 0 && !limits.some((e) => e.limit.includes('*') || compare(version, e.limit) < 0)) return undefined
  const sorted = range.events.filter((e) => !('limit' in e)).map((event, i) => ({ event, i })).sort((a, b) => {
    const x = eventVersion(a.event)
    const y = eventVersion(b.event)
    if ('introduced' in a.event && x === '0') return 'introduced' in b.event && y === '0' ? a.i - b.i : -1
    if ('introduced' in b.event && y === '0') return 1
    return compare(x, y) || a.i - b.i
  }).map((s) => s.event)
  let vulnerable = false
  let from: string | undefined
  for (const event of sorted) {
    if ('introduced' in event && (event.introduced === '0' || compare(version, event.introduced) >= 0)) {
      vulnerable = true
      from = event.introduced
    } else if ('fixed' in event && compare(version, event.fixed) >= 0) {
      vulnerable = false
    } else if ('last_affected' in event && compare(version, event.last_affected) > 0) {
      vulnerable = false
    }
  }
  if (!vulnerable) return undefined
  // The closing event of the interval that held: the first fixed / last_affected above the version.
  const closing = sorted.find((e) => ('fixed' in e && compare(version, e.fixed) < 0) || ('last_affected' in e && compare(version, e.last_affected) <= 0))
  const upper = closing === undefined ? '' : 'fixed' in closing ? ` <${closing.fixed}` : ` <=${eventVersion(closing)}`
  return {
    confidence,
    matched: `${range.type} ${from === '0' || from === undefined ? '>=0' : `>=${from}`}${upper}`,
    fixed: closing !== undefined && 'fixed' in closing ? closing.fixed : null,
  }
}

/** For an entry matched by its versions list: the lowest fixed event of its ranges above the version, if any. */
function lowestFixedAbove (pkg: AdvisoryPackage, version: string): string | null {
  let lowest: string | null = null
  for (const range of pkg.ranges) {
    const { compare } = orderFor(range, version)
    for (const event of range.events) {
      if ('fixed' in event && compare(version, event.fixed) < 0 && (lowest === null || compare(event.fixed, lowest) < 0)) lowest = event.fixed
    }
  }
  return lowest
}
