/**
 * The CVSS v3.0/v3.1 base score of a vector string, by FIRST's formula
 * (CVSS v3.1 Specification, §7.1 and §7.4; Appendix A for Roundup). OSV
 * publishes vectors, not scores (`severity[].score`); this turns one into
 * the number a `firmware-vulnerable` alert carries.
 *
 * Pure and total: a malformed vector (wrong prefix, a base metric missing,
 * repeated or with an unknown value, an unknown metric) gives undefined,
 * never an exception. Temporal and environmental metrics may be present
 * and are ignored: the base score is what providers publish as "the" CVSS.
 * CVSS v4.0 uses another model (MacroVector lookups); it is not scored here.
 */

const WEIGHTS: Record<'AV' | 'AC' | 'UI' | 'C' | 'I' | 'A', Record<string, number>> = {
  AV: { N: 0.85, A: 0.62, L: 0.55, P: 0.2 },
  AC: { L: 0.77, H: 0.44 },
  UI: { N: 0.85, R: 0.62 },
  C: { H: 0.56, L: 0.22, N: 0 },
  I: { H: 0.56, L: 0.22, N: 0 },
  A: { H: 0.56, L: 0.22, N: 0 },
}

/** Privileges Required weighs more when the scope changes (§7.4). */
const PRIVILEGES: Record<string, Record<string, number>> = { U: { N: 0.85, L: 0.62, H: 0.27 }, C: { N: 0.85, L: 0.68, H: 0.5 } }

const BASE_METRICS = new Set(['AV', 'AC', 'PR', 'UI', 'S', 'C', 'I', 'A'])

/** Temporal and environmental metrics (§3, §4): allowed in a vector, not part of the base score. */
const OTHER_METRICS = new Set(['E', 'RL', 'RC', 'CR', 'IR', 'AR', 'MAV', 'MAC', 'MPR', 'MUI', 'MS', 'MC', 'MI', 'MA'])

/**
 * Roundup as CVSS v3.1 Appendix A defines it: the smallest one-decimal
 * number not below the input, computed on integers so that a float just
 * above a tenth (4.000000000000001) is not pushed up to the next one.
 * v3.0 defines the same rounding in words; this is its exact form.
 */
export function roundUp (input: number): number {
  const intInput = Math.round(input * 100_000)
  return intInput % 10_000 === 0 ? intInput / 100_000 : (Math.floor(intInput / 10_000) + 1) / 10
}

/** The base score (0.0 to 10.0) of a `CVSS:3.0/…` or `CVSS:3.1/…` vector; undefined when it is not one. */
export function cvssV3BaseScore (vector: string): number | undefined {
  if (typeof vector !== 'string' || vector.length > 200) return undefined
  const parts = vector.trim().split('/')
  if (parts[0] !== 'CVSS:3.0' && parts[0] !== 'CVSS:3.1') return undefined
  const metrics = new Map<string, string>()
  for (const part of parts.slice(1)) {
    const [name, value, extra] = part.split(':')
    if (name === undefined || value === undefined || extra !== undefined || metrics.has(name)) return undefined
    if (!BASE_METRICS.has(name) && !OTHER_METRICS.has(name)) return undefined
    metrics.set(name, value)
  }
  const weight = (name: string, table: Record<string, number> | undefined): number | undefined => {
    const value = metrics.get(name)
    return table && value !== undefined && Object.hasOwn(table, value) ? table[value] : undefined
  }
  const scope = metrics.get('S')
  const [av, ac, ui, c, i, a] = (['AV', 'AC', 'UI', 'C', 'I', 'A'] as const).map((name) => weight(name, WEIGHTS[name]))
  const pr = weight('PR', scope === undefined ? undefined : Object.hasOwn(PRIVILEGES, scope) ? PRIVILEGES[scope] : undefined)
  if (av === undefined || ac === undefined || ui === undefined || c === undefined || i === undefined || a === undefined || pr === undefined) return undefined

  const iss = 1 - (1 - c) * (1 - i) * (1 - a)
  const impact = scope === 'U' ? 6.42 * iss : 7.52 * (iss - 0.029) - 3.25 * (iss - 0.02) ** 15
  const exploitability = 8.22 * av * ac * pr * ui
  if (impact <= 0) return 0
  return scope === 'U' ? roundUp(Math.min(impact + exploitability, 10)) : roundUp(Math.min(1.08 * (impact + exploitability), 10))
}
