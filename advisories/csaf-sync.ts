/**
 * CSAF 2.0 sync from one provider (CSAF v2.0 §7: provider-metadata.json,
 * distributions by `directory_url` with `index.txt` and `changes.csv`, or
 * by ROLIE feeds), over HTTP(S) or from an offline mirror directory laid
 * out as the provider publishes it.
 *
 * Incremental: `changes.csv` lists each file with the time it last
 * changed; only files changed since the provider's stored position are
 * read, plus those refused last time. Without changes.csv, `index.txt`
 * lists every file, and a file whose published `.sha256` matches the
 * stored hash is not read again.
 *
 * Integrity: each advisory's `.sha256` and/or `.sha512` (CSAF §7.1.18)
 * must be published and must match; a file that fails is refused, named
 * in the report with the reason, and the sync goes on with the others.
 * Authenticity, where the operator configured a key for the provider
 * (openpgp-trust.ts): each advisory's `.asc` (§7.1.19) must verify with
 * it. The hashes come from the same server as the files; only the
 * signature tells a compromised provider or mirror from the real one.
 */
import { createHash } from 'node:crypto'
import { readdir } from 'node:fs/promises'
import { type Clock, systemClock } from '../shared/clock.ts'
import type { AdvisoryStore, AsyncAdvisoryStore } from './advisory-store.ts'
import { parseCsaf, type ParsedAdvisory } from './csaf-document.ts'
import { parseOsv } from './osv-document.ts'
import { AdvisoryInputError, type Field, arrayAt, objectAt, optionalArrayAt, optionalObjectAt, optionalStringAt, stringAt } from './input.ts'
import { keyProblem, normalFingerprint, readTrustedKeys, signatureChecker, type SignatureTrust, type SignatureVerdict, type TrustedKey } from './openpgp-trust.ts'
import { directorySource, httpSource, joinLocation, type ProviderSource, SourceError } from './provider-source.ts'

export const DEFAULT_LIMITS = {
  metadataBytes: 1 << 20,
  /** index.txt, changes.csv, a ROLIE feed. */
  listBytes: 32 << 20,
  advisoryBytes: 16 << 20,
  hashBytes: 4096,
  /** A detached `.asc`: a few hundred bytes per signature; a provider may sign with several keys. */
  signatureBytes: 64 << 10,
  /** A provider's public key named in provider-metadata.json (certifications make some large). */
  keyBytes: 1 << 20,
  timeoutMs: 30_000,
}
export type SyncLimits = typeof DEFAULT_LIMITS

export interface SyncOptions {
  /** SQLite (`<data-dir>/advisories.db`) or the collector group's PostgreSQL: every call is awaited. */
  store: AdvisoryStore | AsyncAdvisoryStore
  clock?: Clock
  limits?: Partial<SyncLimits>
  /** Files read at once (default 8). */
  concurrency?: number
  /** Called as files are settled: done of total, for a progress bar. */
  onProgress?: (done: number, total: number) => void
  /** Keys and pinned fingerprints for this provider: every advisory must carry a good signature by one. Unset: signatures are not checked, and the report says so. */
  openpgp?: SignatureTrust
}

export interface Refusal { file: string, reason: string }

export interface SyncReport {
  source: string
  new: number
  updated: number
  unchanged: number
  refused: Refusal[]
  /** Not refusals: a product line left out (unreadable range, no vendor), a malformed changes.csv line. */
  warnings: string[]
  /** Requests made (HTTP) or files read (directory). */
  reads: number
  /** CSAF only: whether OpenPGP signatures were checked, and with which keys. */
  signatures?: { checked: boolean, keys: Array<{ fingerprint: string, from: string }> }
}

type Verify = (content: Buffer, asc: Buffer | undefined) => Promise<SignatureVerdict>

/** Syncs one CSAF provider: `given` is a provider-metadata.json URL (or its site's base URL) or a mirror directory. */
export async function syncCsafProvider (given: string, options: SyncOptions): Promise<SyncReport> {
  const limits = { ...DEFAULT_LIMITS, ...options.limits }
  const isUrl = /^https?:\/\//i.test(given)
  const source = isUrl ? httpSource(given, limits) : directorySource(given)
  const report: SyncReport = { source: given, new: 0, updated: 0, unchanged: 0, refused: [], warnings: [], reads: 0 }
  const clock = options.clock ?? systemClock
  report.signatures = { checked: options.openpgp !== undefined, keys: [] }
  // Positions apart from those of an unchecked sync: switching a key on re-reads what was taken in unchecked.
  const positionKey = (location: string): string => `${given} ${location}${options.openpgp ? ' openpgp' : ''}`
  try {
    const { directories, feeds, publishedKeys } = await discover(source, limits, report)
    let verifier: Verify | undefined
    if (options.openpgp) {
      const keys = await providerKeys(source, options.openpgp, publishedKeys, limits, report, new Date(clock.now()))
      report.signatures.keys = keys.map((k) => ({ fingerprint: k.fingerprint, from: k.from }))
      verifier = signatureChecker(keys, () => new Date(clock.now()))
    }
    const work: Array<{ location: string, file: string }> = []
    const positions: Array<{ key: string, changedUntil: string | null, files: Set<string> }> = []
    for (const directory of directories) {
      const listed = await listDirectory(source, directory, positionKey(directory), limits, options.store, report)
      if (listed) {
        positions.push({ key: positionKey(directory), changedUntil: listed.changedUntil, files: new Set(listed.files.map((f) => f.file)) })
        work.push(...listed.files)
      }
    }
    if (directories.length === 0) {
      for (const feed of feeds) {
        const listed = await listFeed(source, feed, positionKey(feed), limits, options.store, report)
        if (listed) {
          positions.push({ key: positionKey(feed), changedUntil: listed.changedUntil, files: new Set(listed.files.map((f) => f.file)) })
          work.push(...listed.files)
        }
      }
    }
    let done = 0
    options.onProgress?.(0, work.length)
    await inPool(work, options.concurrency ?? 8, async (item) => {
      await syncFile(source, item, limits, options, report, clock, verifier)
      options.onProgress?.(++done, work.length)
    })
    const refused = new Set(report.refused.map((r) => r.file))
    for (const position of positions) {
      await options.store.setPosition(position.key, { changedUntil: position.changedUntil, retry: [...position.files].filter((f) => refused.has(f)), syncedAt: new Date(clock.now()).toISOString() })
    }
  } catch (error) {
    if (!(error instanceof SourceError || error instanceof AdvisoryInputError)) throw error
    report.refused.push({ file: source.given, reason: error.message })
  }
  report.reads = source.reads
  return report
}

async function readJson (source: ProviderSource, location: string, maxBytes: number): Promise<Field | undefined> {
  const bytes = await source.read(location, maxBytes)
  if (!bytes) return undefined
  try {
    return { file: location, path: '', value: JSON.parse(bytes.toString('utf8')) as unknown }
  } catch (error) {
    throw new AdvisoryInputError({ file: location, path: '' }, `not JSON (${(error as Error).message})`)
  }
}

interface PublishedKey { fingerprint: string | undefined, location: string, url: string }

/** provider-metadata.json's distributions: directory locations, ROLIE feed locations, and the public keys it lists. */
async function discover (source: ProviderSource, limits: SyncLimits, report: SyncReport): Promise<{ directories: string[], feeds: string[], publishedKeys: PublishedKey[] }> {
  const metadataLocation = source.kind === 'http'
    ? (/\.json(\?.*)?$/i.test(source.given) ? source.given : joinLocation(source, source.given, '.well-known/csaf/provider-metadata.json'))
    : 'provider-metadata.json'
  const metadata = await readJson(source, metadataLocation, limits.metadataBytes)
  if (!metadata) {
    // A mirror of one distribution directory alone is a mirror too.
    if (source.kind === 'directory') return { directories: ['.'], feeds: [], publishedKeys: [] }
    throw new SourceError(`${metadataLocation}: no provider-metadata.json there`)
  }
  const root = objectAt(metadata, '')
  const canonical = optionalStringAt(root, 'canonical_url')?.value
  const directories: string[] = []
  const feeds: string[] = []
  for (const item of optionalArrayAt(root, 'distributions')?.items ?? []) {
    const distribution = objectAt(item, '')
    const directory = optionalStringAt(distribution, 'directory_url')
    if (directory) directories.push(locate(source, metadataLocation, canonical, directory))
    const rolie = optionalObjectAt(distribution, 'rolie')
    for (const feed of rolie ? arrayAt(rolie, 'feeds').items : []) feeds.push(locate(source, metadataLocation, canonical, stringAt(objectAt(feed, ''), 'url')))
  }
  if (directories.length === 0 && feeds.length === 0) report.warnings.push(`${metadataLocation}: distributions name no directory_url and no ROLIE feed`)
  return { directories, feeds, publishedKeys: publishedKeysOf(source, root, metadataLocation, canonical, report) }
}

/** `public_openpgp_keys`: a bad entry costs that key, with a warning, not the sync (without a pin for it, it is never used anyway). */
function publishedKeysOf (source: ProviderSource, root: Field, metadataLocation: string, canonical: string | undefined, report: SyncReport): PublishedKey[] {
  const publishedKeys: PublishedKey[] = []
  let items: Field[] = []
  try {
    items = optionalArrayAt(root, 'public_openpgp_keys')?.items ?? []
  } catch (error) {
    if (!(error instanceof AdvisoryInputError)) throw error
    report.warnings.push(`${error.message}; no key is taken from it`)
  }
  for (const item of items) {
    try {
      const entry = objectAt(item, '')
      const url = stringAt(entry, 'url')
      const fingerprint = optionalStringAt(entry, 'fingerprint')?.value
      publishedKeys.push({ fingerprint: fingerprint === undefined ? undefined : normalFingerprint(fingerprint), location: locate(source, metadataLocation, canonical, url), url: url.value })
    } catch (error) {
      if (!(error instanceof AdvisoryInputError)) throw error
      report.warnings.push(`${error.message}; that key is not used`)
    }
  }
  return publishedKeys
}

/**
 * The keys this provider's advisories are checked with: the operator's
 * key files, and each key provider-metadata.json lists whose own
 * fingerprint equals a pinned one. The metadata's `fingerprint` only
 * chooses what to fetch; the key fetched must itself have the pinned
 * fingerprint, or it is not used. With no usable key at all, the whole
 * provider is refused: nothing could be accepted.
 */
async function providerKeys (source: ProviderSource, trust: SignatureTrust, published: PublishedKey[], limits: SyncLimits, report: SyncReport, now: Date): Promise<TrustedKey[]> {
  const keys = [...trust.keys]
  const unmet = new Set(trust.pins.filter((pin) => !keys.some((k) => k.fingerprint === pin)))
  for (const entry of published) {
    if (entry.fingerprint === undefined || !unmet.has(entry.fingerprint)) continue
    const bytes = await source.read(entry.location, limits.keyBytes)
    if (!bytes) {
      report.warnings.push(`${entry.url}: the key pinned as ${entry.fingerprint} is listed in provider-metadata.json but not there`)
      continue
    }
    let fetched: TrustedKey[]
    try {
      fetched = await readTrustedKeys(entry.url, bytes)
    } catch (error) {
      report.warnings.push((error as Error).message)
      continue
    }
    for (const key of fetched) {
      if (unmet.delete(key.fingerprint)) keys.push(key)
      else report.warnings.push(`${entry.url}: holds key ${key.fingerprint}, not the pinned ${entry.fingerprint}; not used`)
    }
  }
  const listed = published.map((p) => p.fingerprint ?? '(no fingerprint)').join(', ') || 'none'
  for (const pin of unmet) report.warnings.push(`pinned key ${pin}: no key with that fingerprint from this provider (provider-metadata.json lists ${listed})`)
  const problems = (await Promise.all(keys.map(async (key) => await keyProblem(key, now)))).filter((p): p is string => p !== undefined)
  if (keys.length === 0) throw new SourceError(`no OpenPGP key to check signatures with: pinned ${trust.pins.join(', ')}, but provider-metadata.json lists ${listed} (or the key fetched has another fingerprint); every advisory would be refused`)
  if (problems.length === keys.length) throw new SourceError(`no OpenPGP key to check signatures with: ${problems.join('; ')}`)
  report.warnings.push(...problems.map((p) => `${p}: signatures by it are refused`))
  return keys
}

/**
 * A URL the provider publishes, as a location in this source. Over HTTP,
 * the URL itself. In a mirror, the path below the metadata's own folder
 * (from its canonical_url), else the URL's last path segment (`white/`).
 */
function locate (source: ProviderSource, metadataLocation: string, canonical: string | undefined, url: Field & { value: string }): string {
  if (source.kind === 'http') {
    const resolved = new URL(url.value, metadataLocation)
    if (resolved.protocol !== 'https:' && resolved.protocol !== 'http:') throw new AdvisoryInputError(url, `"${url.value}" is not an http(s) URL`)
    return resolved.toString()
  }
  if (canonical) {
    const base = canonical.slice(0, canonical.lastIndexOf('/') + 1)
    if (url.value.startsWith(base)) return safeRelative(url, url.value.slice(base.length).replace(/\/+$/, '') || '.')
  }
  const path = url.value.replace(/^[a-z]+:\/\/[^/]+/i, '').replace(/[?#].*$/, '').replace(/\/+$/, '')
  return safeRelative(url, path.slice(path.lastIndexOf('/') + 1) || '.')
}

/** A relative path from a provider's list: no climbing out, no absolute paths, nothing but plain names. */
function safeRelative (at: Pick<Field, 'file' | 'path'>, path: string): string {
  if (path === '.') return path
  if (!/^[A-Za-z0-9._\-/]{1,300}$/.test(path) || path.startsWith('/') || path.split('/').some((s) => s === '..' || s === '')) {
    throw new AdvisoryInputError(at, `"${path.slice(0, 80)}" is not a plain relative path`)
  }
  return path
}

interface Listed { changedUntil: string | null, files: Array<{ location: string, file: string }> }

/** The files of a distribution directory to read this time: changed since the position (changes.csv) or all (index.txt), plus last time's refusals. */
async function listDirectory (source: ProviderSource, directory: string, positionKey: string, limits: SyncLimits, store: SyncOptions['store'], report: SyncReport): Promise<Listed | undefined> {
  const position = await store.position(positionKey)
  const changes = await source.read(joinLocation(source, directory, 'changes.csv'), limits.listBytes)
  const file = (relative: string): { location: string, file: string } => {
    const location = joinLocation(source, directory, relative)
    return { location, file: location }
  }
  let names: string[]
  let changedUntil = position.changedUntil
  if (changes) {
    const since = position.changedUntil === null ? -Infinity : Date.parse(position.changedUntil)
    const latest = new Map<string, number>()
    changes.toString('utf8').split(/\r?\n/).forEach((line, i) => {
      if (line.trim() === '') return
      const cells = line.split(',').map((cell) => cell.trim().replace(/^"(.*)"$/, '$1'))
      const at = Date.parse(cells[1] ?? '')
      if (cells.length !== 2 || !Number.isFinite(at) || !cells[0]!.endsWith('.json')) {
        report.warnings.push(`${joinLocation(source, directory, 'changes.csv')}: line ${i + 1} is not "<path>.json","<ISO time>"; skipped`)
        return
      }
      try {
        const path = safeRelative({ file: 'changes.csv', path: `line ${i + 1}` }, cells[0]!)
        latest.set(path, Math.max(latest.get(path) ?? -Infinity, at))
      } catch (error) {
        report.warnings.push(`${joinLocation(source, directory, 'changes.csv')}: ${(error as Error).message}; skipped`)
      }
    })
    const newest = Math.max(since, ...latest.values())
    if (Number.isFinite(newest)) changedUntil = new Date(newest).toISOString()
    names = [...latest].filter(([, at]) => at > since).map(([path]) => path)
  } else {
    const index = await source.read(joinLocation(source, directory, 'index.txt'), limits.listBytes)
    if (!index) {
      report.refused.push({ file: joinLocation(source, directory, 'changes.csv'), reason: `${directory}: neither changes.csv nor index.txt there` })
      return undefined
    }
    names = []
    index.toString('utf8').split(/\r?\n/).forEach((line, i) => {
      if (line.trim() === '') return
      try {
        names.push(safeRelative({ file: 'index.txt', path: `line ${i + 1}` }, line.trim()))
      } catch (error) {
        report.warnings.push(`${joinLocation(source, directory, 'index.txt')}: ${(error as Error).message}; skipped`)
      }
    })
  }
  const files = new Map(names.map((name) => [file(name).location, file(name)]))
  for (const retry of position.retry) if (!files.has(retry)) files.set(retry, { location: retry, file: retry })
  return { changedUntil, files: [...files.values()] }
}

/** A ROLIE feed (RFC 8322 as CSAF §7.1.21 uses it): entries changed since the position. */
async function listFeed (source: ProviderSource, feedLocation: string, positionKey: string, limits: SyncLimits, store: SyncOptions['store'], report: SyncReport): Promise<Listed | undefined> {
  const position = await store.position(positionKey)
  const feed = await readJson(source, feedLocation, limits.listBytes)
  if (!feed) {
    report.refused.push({ file: feedLocation, reason: `${feedLocation}: ROLIE feed not found` })
    return undefined
  }
  const since = position.changedUntil === null ? -Infinity : Date.parse(position.changedUntil)
  let newest = since
  const files: Array<{ location: string, file: string }> = []
  for (const item of optionalArrayAt(objectAt(feed, 'feed'), 'entry')?.items ?? []) {
    const entry = objectAt(item, '')
    const updated = Date.parse(stringAt(entry, 'updated').value)
    const self = arrayAt(entry, 'link').items.map((l) => objectAt(l, '')).find((l) => (l.value as Record<string, unknown>).rel === 'self')
    const content = optionalObjectAt(entry, 'content')
    const href = content ? optionalStringAt(content, 'src') : self ? stringAt(self, 'href') : undefined
    if (!href || !Number.isFinite(updated)) {
      report.warnings.push(`${feedLocation}: ${entry.path} has no advisory link or updated time; skipped`)
      continue
    }
    newest = Math.max(newest, updated)
    if (updated <= since) continue
    const location = source.kind === 'http' ? new URL(href.value, feedLocation).toString() : locate(source, feedLocation, undefined, href)
    files.push({ location, file: location })
  }
  for (const retry of position.retry) if (!files.some((f) => f.file === retry)) files.push({ location: retry, file: retry })
  return { changedUntil: Number.isFinite(newest) ? new Date(newest).toISOString() : null, files }
}

/** A published digest file: `<hex>` or `<hex>  <name>` (sha256sum's format). */
function publishedDigest (file: string, suffix: string, bytes: Buffer | undefined, hexLength: number): string | undefined {
  if (!bytes) return undefined
  const digest = bytes.toString('utf8').trim().split(/\s+/)[0]?.toLowerCase() ?? ''
  if (!new RegExp(`^[0-9a-f]{${hexLength}}$`).test(digest)) throw new AdvisoryInputError({ file: `${file}${suffix}`, path: '' }, `not a ${suffix.slice(1).toUpperCase()} digest`)
  return digest
}

async function syncFile (source: ProviderSource, item: { location: string, file: string }, limits: SyncLimits, options: SyncOptions, report: SyncReport, clock: Clock, verifier: Verify | undefined): Promise<void> {
  const { location, file } = item
  try {
    const [sha256File, sha512File] = await Promise.all([source.read(`${location}.sha256`, limits.hashBytes), source.read(`${location}.sha512`, limits.hashBytes)])
    const expected256 = publishedDigest(file, '.sha256', sha256File, 64)
    const expected512 = publishedDigest(file, '.sha512', sha512File, 128)
    if (!expected256 && !expected512) throw new AdvisoryInputError({ file, path: '' }, 'no .sha256 or .sha512 is published beside it, so its integrity cannot be checked')
    const provider = source.given
    // With signatures checked, a stored hash does not say the stored copy was signed: read and verify it.
    if (!verifier && expected256 && await options.store.hashOf(provider, file) === expected256) {
      report.unchanged++
      return
    }
    const content = await source.read(location, limits.advisoryBytes)
    if (!content) throw new AdvisoryInputError({ file, path: '' }, 'listed, but not there')
    const actual256 = createHash('sha256').update(content).digest('hex')
    if (expected256 && actual256 !== expected256) throw new AdvisoryInputError({ file, path: '' }, `hash mismatch: ${file}.sha256 gives ${expected256.slice(0, 16)}…, the file hashes to ${actual256.slice(0, 16)}…; refused`)
    if (expected512) {
      const actual512 = createHash('sha512').update(content).digest('hex')
      if (actual512 !== expected512) throw new AdvisoryInputError({ file, path: '' }, `hash mismatch: ${file}.sha512 gives ${expected512.slice(0, 16)}…, the file hashes to ${actual512.slice(0, 16)}…; refused`)
    }
    if (verifier) {
      const verdict = await verifier(content, await source.read(`${location}.asc`, limits.signatureBytes))
      if (!verdict.valid) throw new AdvisoryInputError({ file, path: '' }, `${verdict.reason}; refused`)
    }
    let json: unknown
    try {
      json = JSON.parse(content.toString('utf8'))
    } catch (error) {
      throw new AdvisoryInputError({ file, path: '' }, `not JSON (${(error as Error).message})`)
    }
    const parsed: ParsedAdvisory = parseCsaf(file, json)
    report.warnings.push(...parsed.warnings)
    const result = await options.store.upsert(parsed.advisory, { provider, file, sha256: actual256 }, new Date(clock.now()).toISOString())
    report[result]++
  } catch (error) {
    if (!(error instanceof SourceError || error instanceof AdvisoryInputError)) throw error
    report.refused.push({ file, reason: error.message })
  }
}

async function inPool<T> (items: readonly T[], width: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  const lanes = Array.from({ length: Math.min(width, items.length) }, async () => {
    while (next < items.length) await work(items[next++]!)
  })
  await Promise.all(lanes)
}

/**
 * `--osv <directory>`: every `*.json` in it (not below) an OSV record
 * (osv-document.ts). No hashes are published beside OSV files; a file
 * whose content hash is the stored one is unchanged.
 */
export async function syncOsvDirectory (directory: string, options: SyncOptions): Promise<SyncReport> {
  const limits = { ...DEFAULT_LIMITS, ...options.limits }
  const clock = options.clock ?? systemClock
  const source = directorySource(directory)
  const report: SyncReport = { source: directory, new: 0, updated: 0, unchanged: 0, refused: [], warnings: [], reads: 0 }
  let names: string[]
  try {
    names = (await readdir(directory, { withFileTypes: true })).filter((e) => e.isFile() && e.name.endsWith('.json')).map((e) => e.name).sort()
  } catch (error) {
    report.refused.push({ file: directory, reason: `${directory}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}` })
    return report
  }
  let done = 0
  options.onProgress?.(0, names.length)
  for (const name of names) {
    try {
      const content = (await source.read(name, limits.advisoryBytes))!
      const sha256 = createHash('sha256').update(content).digest('hex')
      if (await options.store.hashOf(`osv:${directory}`, name) === sha256) report.unchanged++
      else {
        let json: unknown
        try {
          json = JSON.parse(content.toString('utf8'))
        } catch (error) {
          throw new AdvisoryInputError({ file: name, path: '' }, `not JSON (${(error as Error).message})`)
        }
        const parsed = parseOsv(name, json)
        report.warnings.push(...parsed.warnings)
        report[await options.store.upsert(parsed.advisory, { provider: `osv:${directory}`, file: name, sha256 }, new Date(clock.now()).toISOString())]++
      }
    } catch (error) {
      if (!(error instanceof SourceError || error instanceof AdvisoryInputError)) throw error
      report.refused.push({ file: name, reason: error.message })
    }
    options.onProgress?.(++done, names.length)
  }
  report.reads = source.reads
  return report
}
