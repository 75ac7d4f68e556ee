/**
 * One OSV record (ossf/osv-schema) as an advisory. OSV names packages,
 * not devices: a package is read as a device product when its name is
 * `<vendor>/<model>` (the convention docs/advisories.md asks a firmware
 * SBOM to follow), or with `ecosystem_specific.vendor` beside a plain
 * name. `versions` are exact (high confidence); a SEMVER range becomes
 * `vers:semver/…` (exact), an ECOSYSTEM range a generic range read by the
 * generic order (low confidence); GIT ranges name commits and are skipped.
 * OSV scores are CVSS vectors, not base scores: a CVSS v3 vector is
 * scored by FIRST's formula (osv-severity.ts).
 */
import type { AdvisoryProduct } from '../shared/advisory-match.ts'
import type { ParsedAdvisory } from './csaf-document.ts'
import { osvCvss } from './osv-severity.ts'
import { AdvisoryInputError, type Field, arrayAt, objectAt, optionalArrayAt, optionalObjectAt, optionalStringAt, stringAt } from './input.ts'

export function parseOsv (file: string, value: unknown): ParsedAdvisory {
  const root = objectAt({ file, path: '', value }, '')
  const id = stringAt(root, 'id').value.trim()
  if (id === '' || id.length > 200) throw new AdvisoryInputError({ file, path: 'id' }, 'must be 1 to 200 characters')
  const modified = stringAt(root, 'modified').value
  const title = (optionalStringAt(root, 'summary')?.value ?? id).slice(0, 500)
  const cves = (optionalArrayAt(root, 'aliases')?.items ?? []).map((item) => stringAt(item, '').value).filter((alias) => /^CVE-\d{4}-\d{4,}$/.test(alias))
  if (/^CVE-\d{4}-\d{4,}$/.test(id)) cves.unshift(id)
  const warnings: string[] = []
  const { cvss, cvssVector } = osvCvss(root, warnings)
  const products: AdvisoryProduct[] = []
  for (const item of arrayAt(root, 'affected').items) {
    const affected = objectAt(item, '')
    const pkg = objectAt(affected, 'package')
    const name = stringAt(pkg, 'name').value
    const vendorHint = (optionalObjectAt(affected, 'ecosystem_specific')?.value as Record<string, unknown> | undefined)?.vendor
    const slash = name.indexOf('/')
    const vendor = typeof vendorHint === 'string' ? vendorHint : slash > 0 ? name.slice(0, slash) : undefined
    const model = typeof vendorHint === 'string' ? name : name.slice(slash + 1)
    if (vendor === undefined) {
      warnings.push(`${file}: ${pkg.path}.name "${name.slice(0, 80)}" is not <vendor>/<model> and has no ecosystem_specific.vendor; not matched`)
      continue
    }
    for (const version of optionalArrayAt(affected, 'versions')?.items ?? []) {
      products.push({ vendor, model, version: stringAt(version, '').value, range: null, status: 'affected' })
    }
    for (const rangeItem of optionalArrayAt(affected, 'ranges')?.items ?? []) {
      const range = objectAt(rangeItem, '')
      const type = stringAt(range, 'type').value
      if (type === 'GIT') continue
      for (const text of eventsToRanges(type, arrayAt(range, 'events'))) products.push({ vendor, model, version: null, range: text, status: 'affected' })
    }
  }
  return { advisory: { id, title, cves: [...new Set(cves)], cvss, remediation: null, products, revision: modified, releasedAt: modified, format: 'osv', cvssVector }, warnings }
}

/**
 * OSV events (introduced / fixed / last_affected) as ranges, one per
 * interval; `introduced: "0"` is no lower bound. SEMVER as one exact
 * vers: range (the spec's intervals); ECOSYSTEM as one vendor-style range
 * per interval, since those read as "every constraint holds".
 */
function eventsToRanges (type: string, events: Field & { items: Field[] }): string[] {
  const intervals: string[][] = []
  let open: string[] | undefined
  for (const item of events.items) {
    const event = objectAt(item, '')
    const introduced = optionalStringAt(event, 'introduced')?.value
    const fixed = optionalStringAt(event, 'fixed')?.value
    const last = optionalStringAt(event, 'last_affected')?.value
    if (introduced !== undefined) intervals.push(open = introduced === '0' ? [] : [`>=${introduced}`])
    if (fixed !== undefined || last !== undefined) {
      if (!open) intervals.push(open = [])
      open.push(fixed !== undefined ? `<${fixed}` : `<=${last!}`)
      open = undefined
    }
  }
  if (type === 'SEMVER') {
    const constraints = intervals.flat()
    return [`vers:semver/${constraints.length === 0 ? '*' : constraints.join('|')}`]
  }
  return intervals.map((interval) => interval.length === 0 ? '*' : interval.join(' '))
}
