/**
 * Package URLs (package-url/purl-spec: `pkg:type/namespace/name@version
 * ?qualifiers#subpath`) as SBOMs and OSV records name components, and the
 * key two names are compared by: type, namespace and name only. The
 * version is what is then tested against a range; qualifiers (arch,
 * distro) and subpaths do not make a different package for an advisory.
 *
 * OSV names a package by ecosystem and name and gives a purl only
 * sometimes, so the ecosystems with a purl type map onto the same key.
 */

export interface PackageUrl {
  type: string
  namespace: string | null
  name: string
  version: string | null
}

/** Why a purl could not be read: shown with the file and field it came from. */
export class PackageUrlError extends Error {}

const TYPE = /^[a-z][a-z0-9.+-]*$/i

/** A purl, percent-decoded; throws PackageUrlError saying what is wrong. */
export function parsePackageUrl (text: string): PackageUrl {
  const trimmed = text.trim()
  if (!/^pkg:/i.test(trimmed)) throw new PackageUrlError(`"${trimmed.slice(0, 80)}" is not a package URL (pkg:<type>/<name>@<version>)`)
  let rest = trimmed.slice(4).replace(/^\/+/, '')
  rest = rest.split('#')[0]!.split('?')[0]!
  const at = rest.lastIndexOf('@')
  // An npm scope is written %40scope, so an @ past the last / is the version.
  const version = at > rest.lastIndexOf('/') ? rest.slice(at + 1) : null
  if (version !== null) rest = rest.slice(0, at)
  const parts = rest.split('/').filter((p) => p !== '')
  const type = parts.shift()
  if (type === undefined || !TYPE.test(type)) throw new PackageUrlError(`"${trimmed.slice(0, 80)}": the type must be letters, digits, . + or -`)
  const name = parts.pop()
  if (name === undefined) throw new PackageUrlError(`"${trimmed.slice(0, 80)}" has no name`)
  const decode = (segment: string): string => {
    try {
      return decodeURIComponent(segment)
    } catch {
      throw new PackageUrlError(`"${trimmed.slice(0, 80)}": "${segment.slice(0, 40)}" is not percent-encoded`)
    }
  }
  return {
    type: type.toLowerCase(),
    namespace: parts.length > 0 ? parts.map(decode).join('/') : null,
    name: decode(name),
    version: version === null || version === '' ? null : decode(version),
  }
}

/**
 * The key a component is compared by: `pkg:<type>/<namespace>/<name>`,
 * lower case (firmware SBOMs are written by hand as often as by tools,
 * and "MbedTLS" is mbedtls); PyPI names as PEP 503 normalises them.
 */
export function packageKey (purl: Pick<PackageUrl, 'type' | 'namespace' | 'name'>): string {
  const type = purl.type.toLowerCase()
  let name = purl.name.toLowerCase()
  if (type === 'pypi') name = name.replace(/[-_.]+/g, '-')
  return `pkg:${type}/${purl.namespace ? `${purl.namespace.toLowerCase()}/` : ''}${name}`
}

/** OSV ecosystems (ossf/osv-schema, "Defined ecosystems") with a purl type: how `name` becomes namespace and name. */
const ECOSYSTEM_TYPES: Record<string, (name: string) => Pick<PackageUrl, 'type' | 'namespace' | 'name'>> = {
  npm: (name) => splitLast('npm', name),
  pypi: (name) => ({ type: 'pypi', namespace: null, name }),
  go: (name) => splitLast('golang', name),
  'crates.io': (name) => ({ type: 'cargo', namespace: null, name }),
  maven: (name) => { const [group, artifact] = name.split(':'); return { type: 'maven', namespace: artifact === undefined ? null : group!, name: artifact ?? name } },
  nuget: (name) => ({ type: 'nuget', namespace: null, name }),
  rubygems: (name) => ({ type: 'gem', namespace: null, name }),
  packagist: (name) => splitLast('composer', name),
  hex: (name) => ({ type: 'hex', namespace: null, name }),
  pub: (name) => ({ type: 'pub', namespace: null, name }),
  conancenter: (name) => ({ type: 'conan', namespace: null, name }),
  'github actions': (name) => splitLast('github', name),
  debian: (name) => ({ type: 'deb', namespace: 'debian', name }),
  ubuntu: (name) => ({ type: 'deb', namespace: 'ubuntu', name }),
  alpine: (name) => ({ type: 'apk', namespace: 'alpine', name }),
  swifturl: (name) => splitLast('swift', name),
  hackage: (name) => ({ type: 'hackage', namespace: null, name }),
  cran: (name) => ({ type: 'cran', namespace: null, name }),
}

function splitLast (type: string, name: string): Pick<PackageUrl, 'type' | 'namespace' | 'name'> {
  const slash = name.lastIndexOf('/')
  return slash > 0 ? { type, namespace: name.slice(0, slash), name: name.slice(slash + 1) } : { type, namespace: null, name }
}

/**
 * An OSV package's key: from its purl when it gives one, else from its
 * ecosystem (a `:<release>` suffix such as `Debian:12` aside) and name;
 * an ecosystem without a purl type keys as `osv:<ecosystem>/<name>`,
 * which only another OSV name of that ecosystem can meet.
 */
export function osvPackageKey (ecosystem: string, name: string, purl: string | null): string {
  if (purl !== null) return packageKey(parsePackageUrl(purl))
  const base = ecosystem.split(':')[0]!.trim().toLowerCase()
  const toPurl = ECOSYSTEM_TYPES[base]
  return toPurl ? packageKey(toPurl(name)) : `osv:${base}/${name.toLowerCase()}`
}

/**
 * The key of the repository an OSV GIT range names, as a `pkg:github`
 * (or gitlab, bitbucket) purl would: records converted from the NVD carry
 * only a repository and its tags, and a firmware SBOM often names its C
 * libraries by their GitHub purl (`pkg:github/Mbed-TLS/mbedtls@v3.5.1`).
 */
export function repositoryKey (repo: string): string | undefined {
  const match = /^(?:https?|git):\/\/(?:www\.)?(github\.com|gitlab\.com|bitbucket\.org)\/([^/\s]+)\/([^/\s]+?)(?:\.git)?\/?$/i.exec(repo.trim())
  if (!match) return undefined
  return packageKey({ type: match[1]!.split('.')[0]!, namespace: match[2]!, name: match[3]! })
}
