/**
 * A firmware's SBOM read into the components matching needs (name,
 * version, purl): CycloneDX 1.4–1.6 JSON (`components`, nested
 * `components` inside them; `metadata.component` is the firmware itself
 * and is not one of its components) or SPDX 2.2/2.3 JSON (`packages`,
 * each with `versionInfo` and a purl among its `externalRefs`; the
 * package the document describes is the firmware itself and is left out).
 *
 * An SBOM is untrusted input like an advisory: it is refused whole, with
 * the field named, when it is not JSON, not one of those formats, or a
 * component has no version (a component without one cannot be matched,
 * and a silent gap reads as "not affected").
 */
import { createHash } from 'node:crypto'
import type { SbomComponent } from '../shared/component-match.ts'
import { PackageUrlError, parsePackageUrl } from '../shared/package-url.ts'
import { AdvisoryInputError, type Field, arrayAt, objectAt, optionalArrayAt, optionalStringAt, stringAt } from './input.ts'
import type { StoredSbom } from './advisory-store.ts'

/** An SBOM larger than this is refused before it is parsed: a firmware's bill of materials, not a distribution's. */
export const MAX_SBOM_BYTES = 16 * 1024 * 1024
const MAX_COMPONENTS = 50_000
const MAX_DEPTH = 30
const CYCLONEDX_VERSIONS = ['1.4', '1.5', '1.6']
const SPDX_VERSIONS = ['SPDX-2.2', 'SPDX-2.3']

export type ParsedSbom = Pick<StoredSbom, 'format' | 'specVersion' | 'components' | 'sha256'>

/** Reads an SBOM's bytes; throws AdvisoryInputError naming the file and field. */
export function parseSbom (file: string, bytes: Buffer): ParsedSbom {
  if (bytes.length > MAX_SBOM_BYTES) throw new AdvisoryInputError({ file, path: '' }, `is ${bytes.length} bytes; an SBOM is read up to ${MAX_SBOM_BYTES} bytes`)
  let value: unknown
  try {
    value = JSON.parse(bytes.toString('utf8'))
  } catch (error) {
    throw new AdvisoryInputError({ file, path: '' }, `is not JSON (${(error as Error).message}); give a CycloneDX or SPDX JSON document`)
  }
  const root = objectAt({ file, path: '', value }, '')
  const sha256 = createHash('sha256').update(bytes).digest('hex')
  const fields = root.value as Record<string, unknown>
  if (fields.bomFormat !== undefined) {
    const format = stringAt(root, 'bomFormat')
    if (format.value !== 'CycloneDX') throw new AdvisoryInputError(format, `is "${format.value.slice(0, 40)}"; only CycloneDX is read`)
    const specVersion = stringAt(root, 'specVersion')
    if (!CYCLONEDX_VERSIONS.includes(specVersion.value)) throw new AdvisoryInputError(specVersion, `is "${specVersion.value.slice(0, 40)}"; CycloneDX ${CYCLONEDX_VERSIONS.join(', ')} are read`)
    return { format: 'cyclonedx', specVersion: specVersion.value, components: unique(cycloneDxComponents(root)), sha256 }
  }
  if (fields.spdxVersion !== undefined) {
    const specVersion = stringAt(root, 'spdxVersion')
    if (!SPDX_VERSIONS.includes(specVersion.value)) throw new AdvisoryInputError(specVersion, `is "${specVersion.value.slice(0, 40)}"; ${SPDX_VERSIONS.join(' and ')} JSON are read`)
    return { format: 'spdx', specVersion: specVersion.value, components: unique(spdxComponents(root)), sha256 }
  }
  throw new AdvisoryInputError({ file, path: 'bomFormat' }, 'is missing, and so is spdxVersion: not a CycloneDX or SPDX JSON document')
}

function cycloneDxComponents (root: Field): SbomComponent[] {
  const components: SbomComponent[] = []
  const walk = (list: Field & { items: Field[] }, depth: number): void => {
    if (depth > MAX_DEPTH) throw new AdvisoryInputError(list, `nests deeper than ${MAX_DEPTH} levels`)
    for (const item of list.items) {
      const component = objectAt(item, '')
      const name = bounded(stringAt(component, 'name'))
      const version = optionalStringAt(component, 'version')
      if (version === undefined || version.value.trim() === '') throw new AdvisoryInputError({ file: component.file, path: `${component.path}.version` }, `is missing for "${name.slice(0, 80)}"; every component needs the version it is built in at`)
      const purl = optionalStringAt(component, 'purl')
      components.push({ name, version: bounded(version), purl: purl === undefined ? null : checkedPurl(purl) })
      if (components.length > MAX_COMPONENTS) throw new AdvisoryInputError(list, `holds more than ${MAX_COMPONENTS} components`)
      const nested = optionalArrayAt(component, 'components')
      if (nested) walk(nested, depth + 1)
    }
  }
  const top = optionalArrayAt(root, 'components')
  if (top) walk(top, 0)
  return components
}

function spdxComponents (root: Field): SbomComponent[] {
  // The package the document describes is the firmware itself (SPDX 2.3 §6.4 documentDescribes, or a DESCRIBES relationship).
  const described = new Set<string>()
  for (const id of optionalArrayAt(root, 'documentDescribes')?.items ?? []) described.add(stringAt(id, '').value)
  for (const item of optionalArrayAt(root, 'relationships')?.items ?? []) {
    const relationship = objectAt(item, '')
    if (optionalStringAt(relationship, 'relationshipType')?.value === 'DESCRIBES' && optionalStringAt(relationship, 'spdxElementId')?.value === 'SPDXRef-DOCUMENT') {
      const target = optionalStringAt(relationship, 'relatedSpdxElement')?.value
      if (target !== undefined) described.add(target)
    }
  }
  const packages = arrayAt(root, 'packages')
  if (packages.items.length > MAX_COMPONENTS) throw new AdvisoryInputError(packages, `holds more than ${MAX_COMPONENTS} packages`)
  const components: SbomComponent[] = []
  for (const item of packages.items) {
    const pkg = objectAt(item, '')
    if (described.has(optionalStringAt(pkg, 'SPDXID')?.value ?? '')) continue
    const name = bounded(stringAt(pkg, 'name'))
    const version = optionalStringAt(pkg, 'versionInfo')
    if (version === undefined || version.value.trim() === '' || /^NO(?:ASSERTION|NE)$/.test(version.value)) {
      throw new AdvisoryInputError({ file: pkg.file, path: `${pkg.path}.versionInfo` }, `is ${version === undefined ? 'missing' : `"${version.value}"`} for "${name.slice(0, 80)}"; every package needs the version it is built in at`)
    }
    let purl: string | null = null
    for (const refItem of optionalArrayAt(pkg, 'externalRefs')?.items ?? []) {
      const ref = objectAt(refItem, '')
      if (optionalStringAt(ref, 'referenceType')?.value !== 'purl') continue
      purl = checkedPurl(stringAt(ref, 'referenceLocator'))
      break
    }
    components.push({ name, version: bounded(version), purl })
  }
  return components
}

function checkedPurl (field: Field & { value: string }): string {
  try {
    parsePackageUrl(field.value)
  } catch (error) {
    if (error instanceof PackageUrlError) throw new AdvisoryInputError(field, error.message)
    throw error
  }
  return bounded(field)
}

function bounded (field: Field & { value: string }): string {
  const value = field.value.trim()
  if (value === '' || value.length > 500) throw new AdvisoryInputError(field, 'must be 1 to 500 characters')
  return value
}

/** The same component listed twice (a library pulled in by two parts) is one component. */
function unique (components: SbomComponent[]): SbomComponent[] {
  const seen = new Set<string>()
  return components.filter((c) => {
    const key = `${c.purl ?? c.name}\u0000${c.version}`
    if (seen.has(key)) return false
    seen.add(key)
    return true
  })
}
