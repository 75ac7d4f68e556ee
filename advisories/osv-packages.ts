/**
 * An OSV record's `affected` entries as component packages: what a
 * firmware's SBOM components are matched against (shared/component-
 * match.ts). A package is keyed by its purl, else by ecosystem and name
 * (shared/package-url.ts); an entry with only GIT ranges (records
 * converted from the NVD name a repository, not a package) by that
 * repository, so its `versions` list of tags can still meet a
 * `pkg:github/…` component. GIT ranges themselves name commits and are
 * not kept: matching them needs the repository's history.
 */
import type { AdvisoryPackage, OsvEvent, OsvRange } from '../shared/component-match.ts'
import { osvPackageKey, PackageUrlError, repositoryKey } from '../shared/package-url.ts'
import { AdvisoryInputError, type Field, arrayAt, objectAt, optionalArrayAt, optionalObjectAt, optionalStringAt, stringAt } from './input.ts'

const EVENT_KINDS = ['introduced', 'fixed', 'last_affected', 'limit'] as const
/** Events and listed versions kept per entry: enough for any real record, bounded for a hostile one. */
const MAX_EVENTS = 1_000
const MAX_VERSIONS = 10_000

export function osvPackages (root: Field, warnings: string[]): AdvisoryPackage[] {
  const packages: AdvisoryPackage[] = []
  for (const item of arrayAt(root, 'affected').items) {
    const affected = objectAt(item, '')
    const versions = (optionalArrayAt(affected, 'versions')?.items ?? []).slice(0, MAX_VERSIONS).map((v) => stringAt(v, '').value)
    const ranges: OsvRange[] = []
    let repository: string | undefined
    for (const rangeItem of optionalArrayAt(affected, 'ranges')?.items ?? []) {
      const range = objectAt(rangeItem, '')
      const type = stringAt(range, 'type')
      const events = arrayAt(range, 'events')
      if (type.value === 'GIT') {
        repository ??= optionalStringAt(range, 'repo')?.value
        continue
      }
      // A range that cannot be read is left out with a warning naming it; the rest of the record stands (as for CSAF product lines).
      if (type.value !== 'SEMVER' && type.value !== 'ECOSYSTEM') {
        warnings.push(`${type.file}: ${type.path} is "${type.value.slice(0, 40)}"; OSV ranges are SEMVER, ECOSYSTEM or GIT; range not matched`)
        continue
      }
      try {
        if (events.items.length > MAX_EVENTS) throw new AdvisoryInputError(events, `has ${events.items.length} events; at most ${MAX_EVENTS} are read`)
        ranges.push({ type: type.value, events: events.items.map(readEvent) })
      } catch (error) {
        if (!(error instanceof AdvisoryInputError)) throw error
        warnings.push(`${error.message}; range not matched`)
      }
    }
    const pkg = optionalObjectAt(affected, 'package')
    let key: string | undefined
    let name: string
    if (pkg) {
      name = stringAt(pkg, 'name').value
      const purl = optionalStringAt(pkg, 'purl')
      try {
        key = osvPackageKey(stringAt(pkg, 'ecosystem').value, name, purl?.value ?? null)
      } catch (error) {
        if (error instanceof PackageUrlError) throw new AdvisoryInputError(purl!, error.message)
        throw error
      }
    } else {
      name = repository ?? ''
      key = repository === undefined ? undefined : repositoryKey(repository)
      if (key === undefined) {
        warnings.push(`${affected.file}: ${affected.path} names no package${repository ? ` and its repository ${repository.slice(0, 80)} is not on GitHub, GitLab or Bitbucket` : ''}; not matched`)
        continue
      }
    }
    if (ranges.length === 0 && versions.length === 0) {
      if (repository !== undefined) warnings.push(`${affected.file}: ${affected.path} has only GIT ranges (commits) and no versions list; not matched`)
      continue
    }
    packages.push({ key, name, ranges, versions })
  }
  return packages
}

function readEvent (item: Field): OsvEvent {
  const event = objectAt(item, '')
  const kinds = EVENT_KINDS.filter((kind) => optionalStringAt(event, kind) !== undefined)
  // osv-schema: "Only a single type … is allowed in each event object".
  if (kinds.length !== 1) throw new AdvisoryInputError(event, 'must have exactly one of introduced, fixed, last_affected or limit')
  const kind = kinds[0]!
  const version = stringAt(event, kind).value
  if (version === '' || version.length > 200) throw new AdvisoryInputError({ file: event.file, path: `${event.path}.${kind}` }, 'must be 1 to 200 characters')
  return { [kind]: version } as OsvEvent
}
