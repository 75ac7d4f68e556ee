/**
 * npm run bench:advisories — how long a CSAF sync and the matching of a
 * fleet against it take: 2,000 generated advisories (CISA's shape: vendor →
 * product_name → version range branches, CVEs, CVSS, remediations, each
 * with .sha256 and .sha512) synced from a mirror directory, then 10,000
 * devices (vendor, model, firmware) matched against them; then the same
 * sync again, incremental (nothing changed: changes.csv only). Then the
 * SBOM part: 1,000 OSV records on 300 libraries (SEMVER and ECOSYSTEM
 * ranges), an SBOM of 60 components recorded for every firmware the fleet
 * runs, and the fleet matched through its components.
 * `--store postgres`: into a collector group's PostgreSQL instead
 * (PgAdvisoryStore; PostgreSQL 15 on loopback, fsync and
 * synchronous_commit on, as deployed), each advisory a transaction.
 *
 *   npm run bench:advisories -- [--advisories 2000] [--devices 10000] [--store sqlite|postgres] [--osv 1000] [--components 60]
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { type AdvisoryStore, type AsyncAdvisoryStore, parseOsv, PgAdvisoryStore, SqliteAdvisoryStore, syncCsafProvider } from '../advisories/index.ts'
import { createDatabasePool, migrate } from '../db/index.ts'
import { createLogger } from '../shared/logger.ts'
import { startPostgres } from '../test/helpers/postgres.ts'
import { AdvisoryIndex, type FirmwareSbom } from '../shared/advisory-match.ts'
import { advisoryFile, writeProvider } from '../test/helpers/csaf-provider.ts'
import { printTable, progressBar, round, saveResults } from './lib/report.ts'

const { values } = parseArgs({
  options: {
    advisories: { type: 'string', default: '2000' }, devices: { type: 'string', default: '10000' }, store: { type: 'string', default: 'sqlite' },
    osv: { type: 'string', default: '1000' }, components: { type: 'string', default: '60' },
  },
})
if (values.store !== 'sqlite' && values.store !== 'postgres') throw new Error(`--store: "${values.store}" is not sqlite or postgres`)
const advisoryCount = Number(values.advisories)
const deviceCount = Number(values.devices)
const osvCount = Number(values.osv)
const componentCount = Number(values.components)
const LIBRARIES = 300
const VENDORS = 40
const MODELS_PER_VENDOR = 25

const dir = mkdtempSync(join(tmpdir(), 'placeguard-bench-advisories-'))
// Closed however the run ends: a PostgreSQL server left running would hold a share of the cores.
let closeStore = async (): Promise<void> => {}
try {
  // Each advisory names 1–3 models of one vendor, with a mix of vers:, vendor-style and exact versions, and a VEX line.
  const files = Array.from({ length: advisoryCount }, (_, i) => {
    const vendor = `Vendor ${i % VENDORS}`
    const models = [0, 1, 2].slice(0, 1 + (i % 3)).map((m) => `Model ${(i * 7 + m) % MODELS_PER_VENDOR}`)
    const major = i % 6
    return advisoryFile({
      id: `ICSA-26-${String(Math.floor(i / 10)).padStart(3, '0')}-${String(i % 10).padStart(2, '0')}`,
      cves: [`CVE-2026-${String(10_000 + i)}`], cvss: [Math.round((4 + (i % 60) / 10) * 10) / 10],
      products: models.flatMap((model) => [
        { vendor, model, ranges: [i % 2 === 0 ? `vers:generic/>=${major}.0.0|<${major}.4.0` : `<V${major}.4.0`] },
        { vendor, model, versions: [`${major}.2.1`], status: 'known_not_affected' as const },
      ]),
    })
  })
  const mirror = join(dir, 'mirror')
  let started = performance.now()
  writeProvider(mirror, 'https://csaf.example.org/.well-known/csaf', files)
  const writeMs = performance.now() - started

  let store: AdvisoryStore | AsyncAdvisoryStore
  if (values.store === 'postgres') {
    const logger = createLogger({ level: 'silent' })
    const server = await startPostgres({ database: 'placeguard', durable: true })
    const pool = createDatabasePool({ url: server.url, applicationName: 'bench-advisories', logger })
    closeStore = async () => { await pool.end(); await server.stop() }
    await migrate(pool, { logger })
    store = new PgAdvisoryStore({ pool })
  } else {
    const sqlite = new SqliteAdvisoryStore(join(dir, 'advisories.db'))
    store = sqlite
    closeStore = async () => { sqlite.close() }
  }
  const bar = progressBar('sync', advisoryCount)
  started = performance.now()
  const first = await syncCsafProvider(mirror, { store, onProgress: (done) => bar.update(done) })
  const syncMs = performance.now() - started
  bar.stop()
  if (first.new !== advisoryCount || first.refused.length > 0) throw new Error(`sync: ${JSON.stringify({ new: first.new, refused: first.refused.slice(0, 3) })}`)

  started = performance.now()
  const again = await syncCsafProvider(mirror, { store })
  const incrementalMs = performance.now() - started

  started = performance.now()
  const index = new AdvisoryIndex(await store.list())
  const indexMs = performance.now() - started

  const devices = Array.from({ length: deviceCount }, (_, i) => ({
    vendor: `vendor ${i % VENDORS}`, model: `MODEL ${(i * 3) % MODELS_PER_VENDOR}`, firmware: `${i % 7}.${i % 5}.${i % 3}`,
  }))
  started = performance.now()
  let exposed = 0
  let matches = 0
  for (const device of devices) {
    const found = index.match(device, device.firmware)
    if (found.length > 0) exposed++
    matches += found.length
  }
  const matchMs = performance.now() - started

  // SBOMs: OSV records on libraries, and every firmware the fleet runs built from 60 of them.
  started = performance.now()
  for (let i = 0; i < osvCount; i++) {
    const major = i % 4
    const record = {
      id: `GHSA-bench-${i}`, modified: '2026-11-01T00:00:00Z', aliases: [`CVE-2026-${20_000 + i}`], database_specific: { cvss_score: 5 + (i % 50) / 10 },
      affected: [{
        package: { ecosystem: i % 2 === 0 ? 'npm' : 'ConanCenter', name: `lib-${i % LIBRARIES}` },
        ranges: [{ type: i % 2 === 0 ? 'SEMVER' : 'ECOSYSTEM', events: [{ introduced: `${major}.${i % 4}.0` }, { fixed: `${major}.${i % 4}.2` }] }],
      }],
    }
    await store.upsert(parseOsv(`${record.id}.json`, record).advisory, { provider: 'osv:bench', file: `${record.id}.json`, sha256: String(i) }, '2026-12-01T00:00:00.000Z')
  }
  const sboms = new Map<string, FirmwareSbom>()
  for (const device of devices) {
    const key = `${device.vendor}/${device.model}/${device.firmware}`
    if (sboms.has(key)) continue
    const seed = sboms.size
    const components = Array.from({ length: componentCount }, (_, c) => {
      const lib = (seed * 7 + c * 13) % LIBRARIES
      const version = `${(seed + c) % 5}.${(seed + c) % 4}.${c % 3}`
      return { name: `lib-${lib}`, version, purl: `pkg:${lib % 2 === 0 ? 'npm' : 'conan'}/lib-${lib}@${version}` }
    })
    await store.putSbom({ ...device, components, format: 'cyclonedx', specVersion: '1.5', source: `${key}.cdx.json`, sha256: key }, '2026-12-01T00:00:00.000Z')
    sboms.set(key, { ...device, components })
  }
  const recordMs = performance.now() - started
  started = performance.now()
  const sbomIndex = new AdvisoryIndex(await store.list(), await store.sboms())
  const sbomIndexMs = performance.now() - started
  started = performance.now()
  let componentExposed = 0
  let componentMatches = 0
  for (const device of devices) {
    const found = sbomIndex.match(device, device.firmware).filter((m) => m.component)
    if (found.length > 0) componentExposed++
    componentMatches += found.length
  }
  const sbomMatchMs = performance.now() - started
  // Asked again, as firmware-vulnerable does on every message: each SBOM's matches are worked out once.
  started = performance.now()
  for (const device of devices) sbomIndex.match(device, device.firmware)
  const sbomRematchMs = performance.now() - started

  const results = {
    store: values.store, advisories: advisoryCount, devices: deviceCount,
    writeMirrorMs: round(writeMs), syncMs: round(syncMs), perAdvisoryMs: round(syncMs / advisoryCount, 3), syncReads: first.reads,
    incrementalSyncMs: round(incrementalMs), incrementalReads: again.reads,
    indexBuildMs: round(indexMs), matchFleetMs: round(matchMs), perDeviceUs: round((matchMs * 1000) / deviceCount, 2),
    exposedDevices: exposed, matches,
    osvRecords: osvCount, sboms: sboms.size, componentsPerSbom: componentCount, recordOsvAndSbomsMs: round(recordMs),
    sbomIndexBuildMs: round(sbomIndexMs), sbomMatchFleetMs: round(sbomMatchMs), sbomPerDeviceUs: round((sbomMatchMs * 1000) / deviceCount, 2), sbomRematchFleetMs: round(sbomRematchMs),
    componentExposedDevices: componentExposed, componentMatches,
  }
  printTable([{
    store: values.store, advisories: advisoryCount, devices: deviceCount, 'sync ms': results.syncMs, 'reads': first.reads, 'incremental ms': results.incrementalSyncMs,
    'index ms': results.indexBuildMs, 'match fleet ms': results.matchFleetMs, 'µs/device': results.perDeviceUs, exposed, matches,
  }])
  printTable([{
    'osv records': osvCount, sboms: sboms.size, components: componentCount, 'index ms': results.sbomIndexBuildMs,
    'match fleet ms': results.sbomMatchFleetMs, 'µs/device': results.sbomPerDeviceUs, 'again ms': results.sbomRematchFleetMs, exposed: componentExposed, matches: componentMatches,
  }])
  process.stdout.write(`results: ${saveResults('advisories', results)}\n`)
} finally {
  await closeStore()
  rmSync(dir, { recursive: true, force: true })
}
