/**
 * Version ranges as advisories write them, parsed once and then tested
 * against a firmware version. Two kinds, told apart because a person
 * acting on a match needs to know how sure it is:
 *
 * - `vers:` ranges (the VERS specification, package-url/purl-spec
 *   VERSION-RANGE-SPEC): `vers:<scheme>/<constraint>|<constraint>…`,
 *   evaluated exactly as the spec's algorithm says. `vers:semver` compares
 *   by semver; every other scheme by the generic order below.
 * - The vendor-style ranges real advisories carry in CSAF
 *   `product_version_range` names (`<=1.2.0.301`, `<V3.0.29`,
 *   `V2.0 - V2.4`, `All versions`): read best-effort, so a match on one is
 *   labelled low confidence.
 *
 * Pure: no I/O, shared by advisories/ (counts, listing) and policies/
 * (the firmware-vulnerable rule).
 */
import semver from 'semver'

export type Comparator = '=' | '!=' | '<' | '<=' | '>' | '>='
export interface Constraint { comparator: Comparator, version: string }

/** A parsed range: what it was written as, how it compares, whether it is exact (vers:) or read best-effort. */
export interface VersionRange {
  text: string
  scheme: 'semver' | 'generic'
  /** `*`: every version. */
  all: boolean
  constraints: Constraint[]
  exact: boolean
}

/** Why a range could not be read: shown with the file and field it came from. */
export class VersionRangeError extends Error {}

const COMPARATORS: Comparator[] = ['>=', '<=', '!=', '<', '>', '=']
/** A version token: letters, digits and . - _ + ~ ; what vendors write, bounded. */
const VERSION_TOKEN = /^[0-9A-Za-z][0-9A-Za-z.\-_+~]{0,63}$/

/** A leading `V`/`v` or `version` before a digit is a vendor's spelling, not part of the order (V3.0.29 = 3.0.29). */
export function normaliseVersion (version: string): string {
  return version.trim().replace(/^(?:version\s*|v(?=\d))/i, '')
}

/**
 * The generic order: versions split into runs of digits and runs of
 * letters (separators . - _ + ~ only split); digit runs compare as
 * numbers, letter runs case-insensitively, and a version that runs out
 * first is the lower (1.2 < 1.2.1). Pre-release letters are not special.
 */
export function compareGeneric (a: string, b: string): number {
  const pa = segments(normaliseVersion(a))
  const pb = segments(normaliseVersion(b))
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i]
    const y = pb[i]
    if (x === undefined) return -1
    if (y === undefined) return 1
    const xn = /^\d+$/.test(x)
    const yn = /^\d+$/.test(y)
    if (xn && yn) {
      const d = compareDigits(x, y)
      if (d !== 0) return d
    } else if (xn !== yn) {
      return xn ? 1 : -1 // 1.0.1 > 1.0.beta: a number outranks a word
    } else {
      const d = x.toLowerCase() < y.toLowerCase() ? -1 : x.toLowerCase() > y.toLowerCase() ? 1 : 0
      if (d !== 0) return d
    }
  }
  return 0
}

function segments (version: string): string[] {
  return version.match(/\d+|[A-Za-z]+/g) ?? []
}

/** Digit runs of any length, compared without overflow. */
function compareDigits (x: string, y: string): number {
  const a = x.replace(/^0+(?=\d)/, '')
  const b = y.replace(/^0+(?=\d)/, '')
  if (a.length !== b.length) return a.length < b.length ? -1 : 1
  return a < b ? -1 : a > b ? 1 : 0
}

function compare (scheme: VersionRange['scheme'], a: string, b: string): number | undefined {
  if (scheme === 'semver') {
    const x = semver.valid(normaliseVersion(a))
    const y = semver.valid(normaliseVersion(b))
    if (!x || !y) return undefined
    return semver.compare(x, y)
  }
  return compareGeneric(a, b)
}

/** A `vers:` range, strictly as the spec writes it; throws VersionRangeError saying what is wrong. */
export function parseVers (text: string): VersionRange {
  const match = /^vers:([a-z0-9.+-]+)\/(.+)$/i.exec(text.trim())
  if (!match) throw new VersionRangeError(`"${text}" is not a vers: range (vers:<scheme>/<constraints>)`)
  const scheme = match[1]!.toLowerCase() === 'semver' || match[1]!.toLowerCase() === 'npm' ? 'semver' : 'generic'
  const body = match[2]!.replace(/\s+/g, '')
  if (body === '*') return { text, scheme, all: true, constraints: [], exact: true }
  const constraints = body.replace(/^\|+|\|+$/g, '').split(/\|+/).map((part) => {
    const comparator = COMPARATORS.find((c) => part.startsWith(c)) ?? '='
    const raw = part.slice(comparator === '=' && !part.startsWith('=') ? 0 : comparator.length)
    let version: string
    try {
      version = decodeURIComponent(raw) // the spec percent-encodes versions
    } catch {
      throw new VersionRangeError(`"${text}": "${raw}" is not a percent-encoded version`)
    }
    if (!VERSION_TOKEN.test(version)) throw new VersionRangeError(`"${text}": "${part}" is not a <comparator><version> constraint`)
    if (scheme === 'semver' && !semver.valid(version)) throw new VersionRangeError(`"${text}": ${version} is not a semantic version`)
    return { comparator, version }
  })
  const sorted = [...constraints].sort((a, b) => compare(scheme, a.version, b.version) ?? 0)
  for (let i = 1; i < sorted.length; i++) {
    if (compare(scheme, sorted[i - 1]!.version, sorted[i]!.version) === 0) throw new VersionRangeError(`"${text}": version ${sorted[i]!.version} appears twice`)
  }
  return { text, scheme, all: false, constraints: sorted, exact: true }
}

/**
 * A vendor-style range, best-effort: `<=1.2.0.301`, `<V3.0.29`,
 * `>=2.0 <3.1`, `>=2.0, <3.1`, `V2.0 - V2.4`, `2.0 to 2.4`, `prior to 3.1`,
 * `before 3.1`, `all versions`, `*`. Throws VersionRangeError on anything else.
 */
export function parseVendorRange (text: string): VersionRange {
  const trimmed = text.trim().replace(/\s+/g, ' ')
  const lower = trimmed.toLowerCase()
  if (lower === '*' || lower === 'all' || lower === 'all versions') return { text, scheme: 'generic', all: true, constraints: [], exact: false }
  const token = (version: string): string => {
    const v = version.trim()
    if (!VERSION_TOKEN.test(v) || !/\d/.test(v)) throw new VersionRangeError(`"${text}": "${v}" is not a version`)
    return v
  }
  const between = /^(.+?)\s+(?:-|to|through)\s+(.+)$/i.exec(trimmed)
  if (between && !/[<>=]/.test(trimmed)) {
    return { text, scheme: 'generic', all: false, constraints: [{ comparator: '>=', version: token(between[1]!) }, { comparator: '<=', version: token(between[2]!) }], exact: false }
  }
  const prior = /^(?:prior to|before|earlier than|older than)\s+(.+)$/i.exec(trimmed)
  if (prior) return { text, scheme: 'generic', all: false, constraints: [{ comparator: '<', version: token(prior[1]!) }], exact: false }
  const parts = trimmed.split(/\s*(?:,|&&|\band\b|\s)\s*(?=[<>=!])/i).filter((p) => p !== '')
  const constraints = parts.map((part) => {
    const c = /^(>=|<=|!=|==|=|<|>)\s*(.+)$/.exec(part.trim())
    if (!c) throw new VersionRangeError(`"${text}": "${part}" is neither a version nor <, <=, >, >= followed by one`)
    return { comparator: (c[1] === '==' ? '=' : c[1]) as Comparator, version: token(c[2]!) }
  })
  if (constraints.length === 0 || constraints.length > 4) throw new VersionRangeError(`"${text}" is not a version range`)
  return { text, scheme: 'generic', all: false, constraints, exact: false }
}

/** `vers:` exactly, anything else best-effort. */
export function parseRange (text: string): VersionRange {
  return /^vers:/i.test(text.trim()) ? parseVers(text) : parseVendorRange(text)
}

/** Whether `version` lies in `range`; undefined when the version cannot be compared under the range's scheme (e.g. not semver). */
export function inRange (range: VersionRange, version: string): boolean | undefined {
  if (range.all) return true
  if (!range.exact) {
    // Vendor style: every constraint must hold (they are written as one interval).
    for (const c of range.constraints) {
      const d = compare(range.scheme, version, c.version)
      if (d === undefined) return undefined
      if (!holds(c.comparator, d)) return false
    }
    return true
  }
  return versContains(range, version)
}

function holds (comparator: Comparator, d: number): boolean {
  switch (comparator) {
    case '=': return d === 0
    case '!=': return d !== 0
    case '<': return d < 0
    case '<=': return d <= 0
    case '>': return d > 0
    case '>=': return d >= 0
  }
}

/** The VERS spec's containment algorithm, over constraints sorted by version. */
function versContains (range: VersionRange, version: string): boolean | undefined {
  const cmp = (c: Constraint): number | undefined => compare(range.scheme, version, c.version)
  for (const c of range.constraints) {
    const d = cmp(c)
    if (d === undefined) return undefined
    if (c.comparator === '=' && d === 0) return true
    if (c.comparator === '!=' && d === 0) return false
  }
  const rest = range.constraints.filter((c) => c.comparator !== '=' && c.comparator !== '!=')
  if (rest.length === 0) return range.constraints.some((c) => c.comparator === '!=')
  const first = rest[0]!
  if ((first.comparator === '<' || first.comparator === '<=') && holds(first.comparator, cmp(first)!)) return true
  const last = rest[rest.length - 1]!
  if ((last.comparator === '>' || last.comparator === '>=') && holds(last.comparator, cmp(last)!)) return true
  for (let i = 0; i + 1 < rest.length; i++) {
    const current = rest[i]!
    const next = rest[i + 1]!
    if ((current.comparator === '>' || current.comparator === '>=') && (next.comparator === '<' || next.comparator === '<=')) {
      if (holds(current.comparator, cmp(current)!) && holds(next.comparator, cmp(next)!)) return true
    }
  }
  return false
}

/** Same version, by the generic order (a leading V ignored): what an exact `product_version` means. */
export function sameVersion (a: string, b: string): boolean {
  return compareGeneric(a, b) === 0
}
