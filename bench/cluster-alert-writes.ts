/**
 * The alert book's writes over SQLite and over PostgreSQL, for
 * `npm run bench:cluster -- --only alert-writes`: what moving a collector's
 * alerts into the group's database costs per write, on this machine.
 *
 * Each store behind a real AlertBook, durable as deployed: SQLite in WAL
 * with synchronous=FULL (the store's own pragmas) in a file of a temp
 * directory; PostgreSQL 15 started on loopback with its default fsync and
 * synchronous_commit (the test helper's fsync=off is for tests, not here),
 * migrated as a collector migrates it.
 *
 *   open         one raise of a new (policy, device), awaited alone
 *   refresh      one raise of the same key again (a repeat of a live alert)
 *   acknowledge  an operator's acknowledge of one of those alerts
 *   1 writer     N raises of new keys issued back to back (over PostgreSQL
 *                through the book's ordered queue), until all are stored
 *   2 writers    two books (two pools for PostgreSQL, as two collectors; two
 *                threads on one file for SQLite) raising the same N keys at
 *                once; afterwards each key must have exactly one live alert
 *                with both raises counted, or the bench fails
 *
 * PostgreSQL twice: unfenced (one statement per raise), and fenced as a
 * collector group's detection writes are (shared/fencing.ts: a
 * transaction that first shows the partition's lease token). Two writers
 * do not apply to the fenced store: one key's partition has one holder,
 * and the other's writes are refused by design.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { Worker } from 'node:worker_threads'
import { partitionOf } from '../cluster/index.ts'
import { createDatabasePool, migrate, type Pool } from '../db/index.ts'
import { AlertBook, PgAlertStore, type Raisable } from '../detection/index.ts'
import type { PolicyId } from '../shared/alert-contract.ts'
import { createLogger } from '../shared/logger.ts'
import { startPostgres } from '../test/helpers/postgres.ts'
import type { AlertWriterData } from './cluster-alert-writer.ts'
import { round } from './lib/report.ts'

const logger = createLogger({ level: 'silent' })
const POLICY: PolicyId = 'value-implausible'
/** Raises before any measurement: the pool's connections, SQLite's page cache, the JIT. */
const WARM_UP = 200

export interface Latency { p50: number, p99: number, max: number }
export interface Throughput { raises: number, seconds: number, perSec: number }
export interface AlertWriteRow {
  store: 'SQLite' | 'PostgreSQL' | 'PostgreSQL, fenced'
  /** What a commit waits for, as the store runs. */
  durability: string
  samples: number
  open: Latency
  refresh: Latency
  acknowledge: Latency
  oneWriter: Throughput
  twoWriters: (Throughput & { keys: number, liveAlerts: number }) | undefined
}

/** The keys' live alerts as stored: how many keys have one, any key with more, and the occurrences counted. */
interface LiveCheck { keys: number, duplicated: number, occurrences: number }

interface Subject {
  store: AlertWriteRow['store']
  durability: string
  book: AlertBook
  /** Both writers' raises of `deviceIds`, at once; answers the wall time in ms. Absent where two writers do not apply. */
  twoWriters: ((deviceIds: string[]) => Promise<number>) | undefined
  live: (prefix: string) => Promise<LiveCheck>
  close: () => Promise<void>
}

function finding (deviceId: string, writer = 'bench'): Raisable {
  return { policy: POLICY, deviceId, severity: 'high', summary: `bench: ${writer} saw it`, evidence: { writer } }
}

const devices = (prefix: string, count: number): string[] => Array.from({ length: count }, (_, n) => `${prefix}-${String(n).padStart(5, '0')}`)

function latency (ms: number[]): Latency {
  const sorted = [...ms].sort((a, b) => a - b)
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!
  return { p50: round(at(0.5), 2), p99: round(at(0.99), 2), max: round(sorted.at(-1)!, 2) }
}

async function timeEach<T> (items: T[], write: (item: T) => unknown): Promise<Latency> {
  const ms: number[] = []
  for (const item of items) {
    const began = performance.now()
    await write(item)
    ms.push(performance.now() - began)
  }
  return latency(ms)
}

async function sqliteSubject (dir: string): Promise<Subject> {
  const path = join(dir, 'alerts.db')
  const live = async (prefix: string): Promise<LiveCheck> => {
    const db = new DatabaseSync(path)
    try {
      const row = db.prepare(`SELECT count(DISTINCT device_id) AS keys, count(*) - count(DISTINCT device_id) AS duplicated,
        coalesce(sum(json_extract(body, '$.occurrences')), 0) AS occurrences FROM alerts WHERE policy = ? AND device_id LIKE ? AND status != 'resolved'`)
        .get(POLICY, `${prefix}-%`) as { keys: number, duplicated: number, occurrences: number }
      return { keys: Number(row.keys), duplicated: Number(row.duplicated), occurrences: Number(row.occurrences) }
    } finally {
      db.close()
    }
  }
  return {
    store: 'SQLite',
    // The store's own pragmas (sqlite-alert-store.ts): every commit fsyncs the WAL.
    durability: 'WAL, synchronous=FULL',
    book: new AlertBook({ path }),
    live,
    twoWriters: async (deviceIds) => {
      const start = new SharedArrayBuffer(4)
      const writers = ['writer-a', 'writer-b'].map((writer) => {
        const data: AlertWriterData = { path, policy: POLICY, deviceIds, writer, start }
        const worker = new Worker(new URL('./cluster-alert-writer.ts', import.meta.url), { workerData: data })
        const done = new Promise<number>((resolve, reject) => {
          worker.once('message', (message: { ms: number }) => resolve(message.ms))
          worker.once('error', reject)
          worker.once('exit', (code) => reject(new Error(`SQLite writer ${writer} exited with ${code} before answering`)))
        })
        const online = new Promise((resolve) => worker.once('online', resolve))
        return { done, online }
      })
      await Promise.all(writers.map((w) => w.online))
      // A moment for both to open the file and reach the wait, so neither starts with the other's open in its time.
      await new Promise((resolve) => setTimeout(resolve, 200))
      const began = performance.now()
      Atomics.store(new Int32Array(start), 0, 1)
      Atomics.notify(new Int32Array(start), 0)
      await Promise.all(writers.map((w) => w.done))
      return performance.now() - began
    },
    // The file goes with the bench's temp directory.
    close: async () => {},
  }
}

/** The partitions of a collector group (cluster.partitions' default) and the lease token the fenced writer holds them by. */
const PARTITIONS = 16
const TOKEN = 1

async function postgresSubject (fenced: boolean): Promise<Subject> {
  const server = await startPostgres({ database: 'placeguard', durable: true })
  const pools: Pool[] = []
  const pool = (name: string): Pool => {
    const created = createDatabasePool({ url: server.url, applicationName: `bench-${name}`, logger })
    pools.push(created)
    return created
  }
  try {
    await migrate(pool('migrate'), { logger })
  } catch (error) {
    await Promise.all(pools.map((p) => p.end()))
    await server.stop()
    throw error
  }
  // Fenced: every raise checks (and shows) its partition's token in its transaction, as ClusterIngest.fenceOf makes it do.
  const fence = fenced ? (deviceId: string) => ({ partition: partitionOf(deviceId, PARTITIONS), token: TOKEN }) : undefined
  const book = (name: string) => new AlertBook({ asyncStore: new PgAlertStore({ pool: pool(name), ...(fence ? { fence } : {}) }), logger })
  const reader = pool('check')
  // A server that acknowledges commits before they are on disk would flatter PostgreSQL against SQLite's fsync.
  const setting = async (name: string) => (await reader.query<Record<string, string>>(`SHOW ${name}`)).rows[0]![name]!
  const settings = { version: await setting('server_version'), fsync: await setting('fsync'), synchronousCommit: await setting('synchronous_commit') }
  if (settings.fsync !== 'on' || settings.synchronousCommit !== 'on') {
    await Promise.all(pools.map((p) => p.end()))
    await server.stop()
    throw new Error(`PostgreSQL runs with fsync=${settings.fsync}, synchronous_commit=${settings.synchronousCommit}: not the durability a deployment has`)
  }
  return {
    store: fenced ? 'PostgreSQL, fenced' : 'PostgreSQL',
    durability: `PostgreSQL ${settings.version.split(' ')[0]}, fsync=on, synchronous_commit=on`,
    book: book('collector-1'),
    live: async (prefix) => {
      const { rows: [row] } = await reader.query<{ keys: number, duplicated: number, occurrences: number }>(
        `SELECT count(DISTINCT device_id)::int AS keys, (count(*) - count(DISTINCT device_id))::int AS duplicated,
          coalesce(sum((body ->> 'occurrences')::int), 0)::int AS occurrences FROM alerts WHERE policy = $1 AND device_id LIKE $2 AND status <> 'resolved'`,
        [POLICY, `${prefix}-%`])
      return row!
    },
    twoWriters: fenced ? undefined : async (deviceIds) => {
      const books = [book('collector-a'), book('collector-b')]
      // Each pool's first connection made before the clock starts.
      await Promise.all(books.map((b, n) => b.raise(finding(`warm-two-${n}`))))
      const began = performance.now()
      await Promise.all(books.flatMap((b, n) => deviceIds.map((deviceId) => b.raise(finding(deviceId, `writer-${n}`)))))
      const ms = performance.now() - began
      await Promise.all(books.map((b) => b.close()))
      return ms
    },
    close: async () => {
      await Promise.all(pools.map((p) => p.end()))
      await server.stop()
    },
  }
}

async function measure (subject: Subject, samples: number, raises: number): Promise<AlertWriteRow> {
  const { book, store, durability } = subject
  for (const deviceId of devices('warm', WARM_UP)) await book.raise(finding(deviceId))
  const keys = devices('latency', samples)
  const ids: string[] = []
  const open = await timeEach(keys, async (deviceId) => {
    const change = await book.raise(finding(deviceId))
    if (change.change !== 'opened') throw new Error(`${store}: the first raise of ${deviceId} answered ${change.change}, not opened`)
    ids.push(change.alert.id)
  })
  const refresh = await timeEach(keys, async (deviceId) => {
    const change = await book.raise(finding(deviceId))
    if (change.change !== 'updated') throw new Error(`${store}: a repeat of ${deviceId} answered ${change.change}, not updated`)
  })
  const acknowledge = await timeEach(ids, async (id) => {
    if (!await book.acknowledge(id, 'bench')) throw new Error(`${store}: alert ${id} was not acknowledged`)
  })
  process.stderr.write(`alert writes, ${store}: latencies of ${samples} each measured\n`)

  // Back to back: every raise asked for before the first is stored (over PostgreSQL they wait in the book's queue).
  const burst = devices('burst', raises)
  const began = performance.now()
  await Promise.all(burst.map((deviceId) => book.raise(finding(deviceId))))
  const seconds = (performance.now() - began) / 1_000
  const stored = await subject.live('burst')
  if (stored.keys !== raises || stored.duplicated !== 0) throw new Error(`${store}: ${raises} raises back to back left ${stored.keys} live alerts (${stored.duplicated} duplicated)`)
  process.stderr.write(`alert writes, ${store}: ${raises} raises back to back in ${round(seconds, 2)} s\n`)

  const oneWriter = { raises, seconds: round(seconds, 2), perSec: round(raises / seconds, 0) }
  if (!subject.twoWriters) return { store, durability, samples, open, refresh, acknowledge, oneWriter, twoWriters: undefined }
  const shared = devices('shared', raises)
  const twoSeconds = await subject.twoWriters(shared) / 1_000
  const check = await subject.live('shared')
  // The point of the shared database: one live alert per (policy, device) whoever raised it, and no raise lost.
  if (check.keys !== raises || check.duplicated !== 0 || check.occurrences !== 2 * raises) {
    throw new Error(`${store}: two writers raising the same ${raises} keys left ${check.keys} keys with a live alert, ${check.duplicated} extra live alerts ` +
      `and ${check.occurrences} occurrences (expected ${raises}, 0 and ${2 * raises})`)
  }
  process.stderr.write(`alert writes, ${store}: two writers, ${2 * raises} raises of ${raises} keys in ${round(twoSeconds, 2)} s; one live alert per key\n`)
  return {
    store, durability, samples, open, refresh, acknowledge, oneWriter,
    twoWriters: { raises: 2 * raises, keys: raises, seconds: round(twoSeconds, 2), perSec: round(2 * raises / twoSeconds, 0), liveAlerts: check.keys },
  }
}

export async function benchAlertWrites (options: { samples: number, raises: number }): Promise<AlertWriteRow[]> {
  const rows: AlertWriteRow[] = []
  const dir = mkdtempSync(join(tmpdir(), 'placeguard-bench-alerts-'))
  try {
    for (const open of [() => sqliteSubject(dir), () => postgresSubject(false), () => postgresSubject(true)]) {
      const subject = await open()
      try {
        rows.push(await measure(subject, options.samples, options.raises))
      } finally {
        await subject.book.close()
        await subject.close()
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
  return rows
}
