/**
 * npm run bench:advisories — how long a CSAF sync and the matching of a
 * fleet against it take: 2,000 generated advisories (CISA's shape: vendor →
 * product_name → version range branches, CVEs, CVSS, remediations, each
 * with .sha256 and .sha512) synced from a mirror directory, then 10,000
 * devices (vendor, model, firmware) matched against them; then the same
 * sync again, incremental (nothing changed: changes.csv only).
 * `--store postgres`: into a collector group's PostgreSQL instead
 * (PgAdvisoryStore; PostgreSQL 15 on loopback, fsync and
 * synchronous_commit on, as deployed), each advisory a transaction.
 *
 *   npm run bench:advisories -- [--advisories 2000] [--devices 10000] [--store sqlite|postgres]
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { type AdvisoryStore, type AsyncAdvisoryStore, PgAdvisoryStore, SqliteAdvisoryStore, syncCsafProvider } from '../advisories/index.ts'
import { createDatabasePool, migrate } from '../db/index.ts'
import { createLogger } from '../shared/logger.ts'
import { startPostgres } from '../test/helpers/postgres.ts'
import { AdvisoryIndex } from '../shared/advisory-match.ts'
import { advisoryFile, writeProvider } from '../test/helpers/csaf-provider.ts'
import { printTable, progressBar, round, saveResults } from './lib/report.ts'

const { values } = parseArgs({ options: { advisories: { type: 'string', default: '2000' }, devices: { type: 'string', default: '10000' }, store: { type: 'string', default: 'sqlite' } } })
if (values.store !== 'sqlite' && values.store !== 'postgres') throw new Error(`--store: "${values.store}" is not sqlite or postgres`)
const advisoryCount = Number(values.advisories)
const deviceCount = Number(values.devices)
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

  const results = {
    store: values.store, advisories: advisoryCount, devices: deviceCount,
    writeMirrorMs: round(writeMs), syncMs: round(syncMs), perAdvisoryMs: round(syncMs / advisoryCount, 3), syncReads: first.reads,
    incrementalSyncMs: round(incrementalMs), incrementalReads: again.reads,
    indexBuildMs: round(indexMs), matchFleetMs: round(matchMs), perDeviceUs: round((matchMs * 1000) / deviceCount, 2),
    exposedDevices: exposed, matches,
  }
  printTable([{
    store: values.store, advisories: advisoryCount, devices: deviceCount, 'sync ms': results.syncMs, 'reads': first.reads, 'incremental ms': results.incrementalSyncMs,
    'index ms': results.indexBuildMs, 'match fleet ms': results.matchFleetMs, 'µs/device': results.perDeviceUs, exposed, matches,
  }])
  process.stdout.write(`results: ${saveResults('advisories', results)}\n`)
} finally {
  await closeStore()
  rmSync(dir, { recursive: true, force: true })
}
