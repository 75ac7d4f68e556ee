/**
 * An OSV record's CVSS (ossf/osv-schema `severity`, at the top and per
 * `affected`): `[{ type: "CVSS_V3" | "CVSS_V4", score: <vector> }]`. A v3
 * vector is scored by FIRST's formula (shared/cvss.ts) and the highest
 * wins; a v4 vector is kept but not scored (its model is lookup tables,
 * not a formula). `database_specific.cvss_score`, which some databases
 * add, is the fallback. A severity entry that cannot be read costs its
 * score, with a warning, never the advisory.
 */
import { cvssV3BaseScore } from '../shared/cvss.ts'
import type { Field } from './input.ts'

export function osvCvss (root: Field, warnings: string[]): { cvss: number | null, cvssVector: string | null } {
  const record = root.value as Record<string, unknown>
  const lists: Array<{ path: string, value: unknown }> = [{ path: 'severity', value: record.severity }]
  if (Array.isArray(record.affected)) {
    record.affected.forEach((affected: unknown, i) => lists.push({ path: `affected[${i}].severity`, value: (affected as Record<string, unknown> | null)?.severity }))
  }
  let cvss: number | null = null
  let cvssVector: string | null = null
  let v4: string | null = null
  for (const list of lists) {
    if (list.value === undefined) continue
    if (!Array.isArray(list.value)) {
      warnings.push(`${root.file}: ${list.path}: must be an array; no CVSS taken from it`)
      continue
    }
    list.value.forEach((entry: unknown, i) => {
      const { type, score } = (entry ?? {}) as { type?: unknown, score?: unknown }
      if (type === 'CVSS_V3') {
        const base = typeof score === 'string' ? cvssV3BaseScore(score) : undefined
        if (base === undefined) warnings.push(`${root.file}: ${list.path}[${i}].score: ${JSON.stringify(score)?.slice(0, 100)} is not a CVSS v3 vector; no score taken`)
        else if (cvss === null || base > cvss) [cvss, cvssVector] = [base, score as string]
      } else if (type === 'CVSS_V4' && typeof score === 'string' && v4 === null && score.startsWith('CVSS:4.0/')) v4 = score.slice(0, 200)
    })
  }
  if (cvss === null) {
    const fallback = (record.database_specific as Record<string, unknown> | null | undefined)?.cvss_score
    if (typeof fallback === 'number' && fallback >= 0 && fallback <= 10) cvss = fallback
  }
  return { cvss, cvssVector: cvssVector ?? (cvss === null ? v4 : null) }
}
