/**
 * Advisories in a collector group, end to end: two collector services in
 * cluster mode (Redis streams, partition leases) with one PostgreSQL, each
 * with its copy of the PKI's inventory (the meters' vendor and model).
 * `placeguard advisories sync` run as a user would, from a third data
 * directory with PLACEGUARD_DATABASE_URL, stores the advisory in the
 * group's database; both collectors load it within their poll, though
 * neither synced it, and each meter reporting an affected firmware — on
 * either collector's partitions — has one firmware-vulnerable alert for
 * the whole group.
 */
import { spawn } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type CollectorService, createCollectorService, loadConfig } from '../../app/index.ts'
import { clusterKeys, connectRedis, partitionOf, type Redis, StreamHandoff } from '../../cluster/index.ts'
import { createDatabasePool, type Pool } from '../../db/index.ts'
import { createLogger } from '../../shared/logger.ts'
import { waitFor } from '../helpers/broker.ts'
import { advisoryFile, writeProvider } from '../helpers/csaf-provider.ts'
import { createTestFleet, type TestFleet } from '../helpers/fleet.ts'
import { startPostgres, type RunningPostgres } from '../helpers/postgres.ts'
import { startRedis, type RunningRedis } from '../helpers/redis-server.ts'

const logger = createLogger({ level: 'silent' })
const PARTITIONS = 4
const METERS = Array.from({ length: 6 }, (_, i) => `meter-${String(i + 1).padStart(2, '0')}`)
const keys = clusterKeys()
let redisServer: RunningRedis
let postgres: RunningPostgres
let redis: Redis
let fleet: TestFleet
let dir: string
let databaseUrl: string
let pool: Pool

beforeAll(async () => {
  [redisServer, postgres, fleet] = await Promise.all([startRedis(), startPostgres(),
    createTestFleet(METERS.map((deviceId) => ({ deviceId, kind: 'energy', site: 'depot', vendor: 'Acme Metering', model: 'EM-400' })))])
  redis = connectRedis({ url: redisServer.url, name: 'test', logger })
  dir = mkdtempSync(join(tmpdir(), 'pg-advisories-group-'))
  databaseUrl = await postgres.createDatabase('advisories_group')
  pool = createDatabasePool({ url: databaseUrl, applicationName: 'test-advisories-group', logger, max: 2 })
}, 60_000)
afterAll(async () => {
  await pool?.end()
  redis?.disconnect()
  await Promise.all([redisServer?.stop(), postgres?.stop()])
  fleet?.cleanup()
  rmSync(dir, { recursive: true, force: true })
})

/** A collector of the group, its data directory holding a copy of the PKI (as each collector's volume does). */
function collector (name: string): CollectorService {
  const dataDir = join(dir, name)
  mkdirSync(dataDir, { recursive: true })
  cpSync(join(fleet.dataDir, 'pki'), join(dataDir, 'pki'), { recursive: true })
  return createCollectorService(loadConfig({ env: {}, flags: { dataDir, databaseUrl, redisUrl: redisServer.url, cluster: { partitions: PARTITIONS, collectorName: name } } }), '', logger)
}

async function ownerOf (partition: number): Promise<string | null> {
  return await redis.hget(keys.lease(partition), 'owner')
}

/** The CLI as an operator runs it, with the group's database URL; not spawnSync: the collectors in this process keep renewing their leases meanwhile. */
async function placeguard (dataDir: string, ...args: string[]): Promise<{ status: number | null, stdout: string, stderr: string }> {
  const child = spawn(process.execPath, ['bin/placeguard.js', '--data-dir', dataDir, ...args], { env: { ...process.env, PLACEGUARD_DATABASE_URL: databaseUrl } })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const status = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject)
    child.once('close', resolve)
  })
  return { status, stdout, stderr }
}

describe('advisories of a collector group', () => {
  it('are synced once into PostgreSQL, loaded by every collector, and alerted once per affected device', async () => {
    const a = collector('collector-a')
    const b = collector('collector-b')
    await a.start()
    await b.start()
    try {
      await waitFor(async () => {
        const owners = await Promise.all(Array.from({ length: PARTITIONS }, (_, p) => ownerOf(p)))
        return owners.filter((o) => o === 'collector-a').length === 2 && owners.filter((o) => o === 'collector-b').length === 2
      }, 20_000, 'a 2/2 split')
      const holders = new Set(await Promise.all(METERS.map((id) => ownerOf(partitionOf(id, PARTITIONS)))))
      expect(holders, 'the meters are read by both collectors').toEqual(new Set(['collector-a', 'collector-b']))
      expect(a.advisories.listing).toEqual([])

      // Synced from a machine that runs no collector: the database is where it goes.
      const operator = join(dir, 'operator')
      const mirror = join(dir, 'mirror')
      writeProvider(mirror, 'https://csaf.example.org/.well-known/csaf', [advisoryFile({
        id: 'ICSA-26-060-01', cves: ['CVE-2026-6001'], cvss: [8.1], products: [{ vendor: 'Acme Metering', model: 'EM-400', ranges: ['vers:semver/>=5.3.0|<5.4.0'] }],
      })])
      const sync = await placeguard(operator, 'advisories', 'sync', '--csaf', mirror)
      expect(sync.stderr).toBe('')
      expect(sync).toMatchObject({ status: 0, stdout: expect.stringMatching(/: 1 new, 0 updated, 0 unchanged, 0 refused/) })
      expect(JSON.parse((await placeguard(join(dir, 'elsewhere'), 'advisories', 'list', '--json')).stdout)).toMatchObject([{ id: 'ICSA-26-060-01', cvss: 8.1 }])
      for (const dataDir of ['operator', 'collector-a', 'collector-b']) expect(existsSync(join(dir, dataDir, 'advisories.db')), dataDir).toBe(false)

      // Each collector finds it at its next poll of the revision.
      await waitFor(() => [a, b].every((c) => c.advisories.listing.some((x) => x.id === 'ICSA-26-060-01')), 20_000, 'the advisory on both collectors')

      const handoff = new StreamHandoff({ redis, keys, partitions: PARTITIONS })
      const report = async (seq: number, fw: string) => {
        for (const id of METERS) {
          const now = Date.now()
          await handoff.append({
            partitionKey: id, topic: `places/depot/energy/${id}/telemetry`, node: 'node-1', receivedAtMs: now,
            payload: Buffer.from(JSON.stringify({ ts: now, seq, fw, power_kw: 2, voltage_v: 231, energy_kwh: 1000 + seq })),
          })
        }
      }
      const live = async () => (await pool.query<{ device_id: string, n: number }>(
        'SELECT device_id, count(*)::int AS n FROM alerts WHERE policy = \'firmware-vulnerable\' AND status <> \'resolved\' GROUP BY device_id ORDER BY device_id')).rows
      await report(1, '5.3.1')
      await waitFor(async () => (await live()).length === METERS.length, 20_000, 'every meter alerted')
      await report(2, '5.3.1')
      await a.settled()
      await b.settled()
      expect(await live()).toEqual(METERS.map((id) => ({ device_id: id, n: 1 })))
      const { rows } = await pool.query<{ body: { evidence: Record<string, unknown> } }>('SELECT body FROM alerts WHERE policy = \'firmware-vulnerable\'')
      for (const row of rows) expect(row.body.evidence).toMatchObject({ advisory: 'ICSA-26-060-01', cves: 'CVE-2026-6001', vendor: 'Acme Metering', model: 'EM-400' })
    } finally {
      await a.stop()
      await b.stop()
    }
  }, 120_000)
})
