/**
 * The collector group's half of `npm run bench:cluster`: real
 * `placeguard collector --redis-url` processes (each its own data
 * directory, embedded store and detection) draining the same backlog of
 * telemetry from the Redis Streams — one collector, then two — and the
 * time from one collector's SIGKILL until the other holds every partition
 * and has stored what the dead one had in hand.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { clusterKeys, clusterStatus, connectRedis, StreamHandoff, type Redis } from '../cluster/index.ts'
import { createLogger } from '../shared/logger.ts'
import { startRedis } from '../test/helpers/redis-server.ts'
import { freePort } from './lib/brokers.ts'
import { round } from './lib/report.ts'

const BIN = join(import.meta.dirname, '..', 'bin', 'placeguard.js')
const PARTITIONS = 16
const logger = createLogger({ level: 'silent' })

export interface CollectorRow { collectors: number, entries: number, seconds: number, msgPerSec: number, cpuUsPerMsg: number }
export interface TakeoverFigures { leasesBackMs: number, backlogStoredMs: number }

const cpuOf = (pid: number): number => {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100
}

interface CollectorProc { child: ChildProcess, name: string }

async function startCollector (pkiDir: string, redisUrl: string, name: string): Promise<CollectorProc> {
  const dataDir = mkdtempSync(join(tmpdir(), `pg-bench-${name}-`))
  cpSync(pkiDir, join(dataDir, 'pki'), { recursive: true })
  writeFileSync(join(dataDir, 'collector.yaml'), `logLevel: error\ncluster:\n  collectorName: ${name}\n`)
  const child = spawn(process.execPath, [BIN, '--data-dir', dataDir, 'collector', '--redis-url', redisUrl, '--http-port', String(await freePort()),
    '--http-host', '127.0.0.1', '--config', join(dataDir, 'collector.yaml')], { stdio: ['ignore', 'ignore', 'inherit'] })
  child.once('exit', () => rmSync(dataDir, { recursive: true, force: true }))
  return { child, name }
}

async function stopCollector (proc: CollectorProc): Promise<void> {
  if (proc.child.exitCode !== null || proc.child.signalCode !== null) return
  const exited = new Promise((resolve) => proc.child.once('exit', resolve))
  proc.child.kill('SIGTERM')
  await exited
}

async function fill (redis: Redis, entries: number, offset: number): Promise<void> {
  const handoff = new StreamHandoff({ redis, keys: clusterKeys(), partitions: PARTITIONS })
  const batch: Array<Promise<string>> = []
  for (let n = 0; n < entries; n++) {
    const device = `flood-${String((n + offset) % 2_000).padStart(5, '0')}`
    const seq = Math.floor((n + offset) / 2_000)
    batch.push(handoff.append({
      partitionKey: device, topic: `places/riverside/flood/${device}/telemetry`, node: 'bench', receivedAtMs: Date.now(),
      payload: Buffer.from(JSON.stringify({ ts: Date.now() - 60_000 + seq, seq, fw: '3.2.1', level_cm: 40 + seq % 7, battery_v: 3.6 })),
    }))
    if (batch.length >= 2_000) await Promise.all(batch.splice(0))
  }
  await Promise.all(batch)
}

/** Unread plus unacknowledged entries over every partition. */
async function outstanding (redis: Redis): Promise<number> {
  const status = await clusterStatus(redis, clusterKeys(), PARTITIONS)
  return status.partitions.reduce((sum, p) => sum + (p.lag ?? p.length) + p.pending, 0)
}

async function until (condition: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!await condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

export async function benchCollectors (pkiDir: string, entries: number): Promise<{ rows: CollectorRow[], takeover: TakeoverFigures }> {
  const rows: CollectorRow[] = []
  let takeover: TakeoverFigures | undefined
  for (const count of [1, 2]) {
    const server = await startRedis()
    const redis = connectRedis({ url: server.url, name: 'bench', logger })
    const procs: CollectorProc[] = []
    try {
      // The backlog first, the collectors after: they drain it as fast as they can.
      await fill(redis, entries, 0)
      for (let n = 1; n <= count; n++) procs.push(await startCollector(pkiDir, server.url, `collector-${n}`))
      const started = performance.now()
      const cpuBefore = procs.map(() => 0)
      await until(async () => await outstanding(redis) === 0, 600_000, `${entries} entries stored by ${count} collector(s)`)
      const seconds = (performance.now() - started) / 1_000
      const cpu = procs.reduce((sum, proc, i) => sum + cpuOf(proc.child.pid!) - cpuBefore[i]!, 0)
      rows.push({ collectors: count, entries, seconds: round(seconds, 1), msgPerSec: round(entries / seconds, 0), cpuUsPerMsg: round(cpu * 1e6 / entries, 0) })
      process.stderr.write(`collectors: ${count} drained ${entries} entries in ${round(seconds, 1)} s\n`)
      if (count === 2) {
        // Takeover: the two hold 8/8; one is killed with a batch in hand.
        await until(async () => {
          const holders = (await clusterStatus(redis, clusterKeys(), PARTITIONS)).partitions.map((p) => p.holder)
          return holders.filter((h) => h === 'collector-1').length === 8 && holders.filter((h) => h === 'collector-2').length === 8
        }, 30_000, 'an 8/8 split')
        const fillNext = fill(redis, 20_000, entries)
        await new Promise((resolve) => setTimeout(resolve, 300))
        procs[0]!.child.kill('SIGKILL')
        const killedAt = performance.now()
        await until(async () => (await clusterStatus(redis, clusterKeys(), PARTITIONS)).partitions.every((p) => p.holder === 'collector-2'), 60_000, 'collector-2 holding all 16')
        const leasesBackMs = performance.now() - killedAt
        await fillNext
        await until(async () => await outstanding(redis) === 0, 120_000, 'the dead collector\'s entries stored')
        takeover = { leasesBackMs: round(leasesBackMs, 0), backlogStoredMs: round(performance.now() - killedAt, 0) }
      }
    } finally {
      for (const proc of procs) await stopCollector(proc)
      redis.disconnect()
      await server.stop()
    }
  }
  return { rows, takeover: takeover! }
}
