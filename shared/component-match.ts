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
import semver, { type SemVer } from 'semver'
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

/** An event with its version parsed once (semver, when it is one): ranges are judged for every component of every firmware. */
interface PreparedEvent { event: OsvEvent, version: string, semver: SemVer | null }
interface PreparedRange { events: PreparedEvent[], limits: PreparedEvent[], bySemver?: PreparedEvent[], byGeneric?: PreparedEvent[] }
const prepared = new WeakMap<OsvRange, PreparedRange>()

function prepare (range: OsvRange): PreparedRange {
  let ready = prepared.get(range)
  if (!ready) {
    const all = range.events.map((event) => {
      const version = Object.values(event)[0] as string
      return { event, version, semver: range.type === 'SEMVER' ? semver.parse(normaliseVersion(version)) : null }
    })
    ready = { events: all.filter((e) => !('limit' in e.event)), limits: all.filter((e) => 'limit' in e.event) }
    prepared.set(range, ready)
  }
  return ready
}

/** How the component's version compares with an event's: semver precedence when both are semver, else the generic order. */
type Compare = (event: PreparedEvent) => number

function comparerFor (range: OsvRange, version: string): { compare: Compare, confidence: 'high' | 'low', exact: boolean } {
  const parsed = range.type === 'SEMVER' ? semver.parse(normaliseVersion(version)) : null
  if (parsed) {
    // A bound that is not semver (a record's mistake) compares by the generic order rather than throwing.
    return { confidence: 'high', exact: true, compare: (e) => e.semver ? parsed.compare(e.semver) : compareGeneric(version, e.version) }
  }
  return { confidence: 'low', exact: false, compare: (e) => compareGeneric(version, e.version) }
}

/** The events in the range's order, "0" first, sorted once per order. */
function sortedEvents (ready: PreparedRange, exact: boolean): PreparedEvent[] {
  const cached = exact ? ready.bySemver : ready.byGeneric
  if (cached) return cached
  const isZero = (e: PreparedEvent): boolean => 'introduced' in e.event && e.version === '0'
  const order = (a: PreparedEvent, b: PreparedEvent): number => exact && a.semver && b.semver ? a.semver.compare(b.semver) : compareGeneric(a.version, b.version)
  const sorted = ready.events.map((e, i) => ({ e, i })).sort((a, b) => {
    if (isZero(a.e)) return isZero(b.e) ? a.i - b.i : -1
    if (isZero(b.e)) return 1
    return order(a.e, b.e) || a.i - b.i
  }).map((s) => s.e)
  if (exact) ready.bySemver = sorted
  else ready.byGeneric = sorted
  return sorted
}

/** The schema's IncludedInRanges for one range, saying which interval held and its fix. */
function inOsvRange (range: OsvRange, version: string): ComponentHit | undefined {
  const ready = prepare(range)
  const { compare, confidence, exact } = comparerFor(range, version)
  if (ready.limits.length > 0 && !ready.limits.some((e) => e.version.includes('*') || compare(e) < 0)) return undefined
  const sorted = sortedEvents(ready, exact)
  let vulnerable = false
  let from: string | undefined
  for (const e of sorted) {
    if ('introduced' in e.event && (e.version === '0' || compare(e) >= 0)) {
      vulnerable = true
      from = e.version
    } else if ('fixed' in e.event && compare(e) >= 0) {
      vulnerable = false
    } else if ('last_affected' in e.event && compare(e) > 0) {
      vulnerable = false
    }
  }
  if (!vulnerable) return undefined
  // The closing event of the interval that held: the first fixed / last_affected above the version.
  const closing = sorted.find((e) => ('fixed' in e.event && compare(e) < 0) || ('last_affected' in e.event && compare(e) <= 0))
  const upper = closing === undefined ? '' : 'fixed' in closing.event ? ` <${closing.version}` : ` <=${closing.version}`
  return {
    confidence,
    matched: `${range.type} ${from === '0' || from === undefined ? '>=0' : `>=${from}`}${upper}`,
    fixed: closing !== undefined && 'fixed' in closing.event ? closing.version : null,
  }
}

/** For an entry matched by its versions list: the lowest fixed event of its ranges above the version, if any. */
function lowestFixedAbove (pkg: AdvisoryPackage, version: string): string | null {
  let lowest: PreparedEvent | null = null
  for (const range of pkg.ranges) {
    const { compare } = comparerFor(range, version)
    for (const e of prepare(range).events) {
      if (!('fixed' in e.event) || compare(e) >= 0) continue
      if (lowest === null || (e.semver && lowest.semver ? e.semver.compare(lowest.semver) : compareGeneric(e.version, lowest.version)) < 0) lowest = e
    }
  }
  return lowest?.version ?? null
}
