/**
 * Two collectors in cluster mode (the app's ClusterIngest, as
 * `placeguard collector --redis-url` runs it, each with its own
 * `cluster.collectorName`) on one redis-server and one embedded store: they
 * split the partitions, each (device, seq) is stored once, and the one that
 * stays takes every partition back when the other leaves.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ClusterIngest } from '../../app/cluster-ingest.ts'
import { clusterKeys, connectRedis, type Redis, StreamHandoff, clusterStatus } from '../../cluster/index.ts'
import { EmbeddedStore } from '../../collector/embedded-store.ts'
import { createLogger } from '../../shared/logger.ts'
import { waitFor } from '../helpers/broker.ts'
import { startRedis, type RunningRedis } from '../helpers/redis-server.ts'

const logger = createLogger({ level: 'silent' })
const PARTITIONS = 16
let server: RunningRedis
let redis: Redis
let dir: string

beforeAll(async () => {
  server = await startRedis()
  redis = connectRedis({ url: server.url, name: 'test', logger })
  dir = mkdtempSync(join(tmpdir(), 'pg-collector-group-'))
})
afterAll(async () => {
  redis?.disconnect()
  await server?.stop()
  rmSync(dir, { recursive: true, force: true })
})

const telemetry = (device: string, seq: number) => ({
  partitionKey: device, topic: `places/riverside/flood/${device}/telemetry`, node: 'node-a', receivedAtMs: Date.now(),
  payload: Buffer.from(JSON.stringify({ ts: 1_700_000_000_000 + seq * 1_000, seq, fw: '3.2.1', level_cm: 40 + seq % 7, battery_v: 3.6 })),
})

/** Who holds each partition's lease, as an operator would read it in Redis. */
async function owners (): Promise<Record<string, number>> {
  const keys = clusterKeys()
  const counts: Record<string, number> = {}
  for (let p = 0; p < PARTITIONS; p++) {
    const owner = await redis.hget(keys.lease(p), 'owner') ?? '(none)'
    counts[owner] = (counts[owner] ?? 0) + 1
  }
  return counts
}

describe('a collector group in cluster mode', () => {
  it('splits the partitions between two collectors, stores each (device, seq) once, and gives them all to the one left', async () => {
    const store = new EmbeddedStore({ path: join(dir, 'group.db') })
    const ingest = (consumer: string) => new ClusterIngest({ redisUrl: server.url, partitions: PARTITIONS, consumer, sink: store, batchSize: 500, logger })
    const handoff = new StreamHandoff({ redis, keys: clusterKeys(), partitions: PARTITIONS })
    const append = async (from: number, to: number) => { for (let seq = from; seq <= to; seq++) await handoff.append(telemetry(`flood-${seq % 37}`, seq)) }
    const a = ingest('collector-a')
    await a.start()
    expect(await owners()).toEqual({ 'collector-a': 16 })
    await append(1, 200)
    const b = ingest('collector-b')
    await b.start()
    let split: Record<string, number> = {}
    await waitFor(() => { void owners().then((o) => { split = o }); return split['collector-b'] === 8 }, 10_000, 'an 8/8 split')
    expect(split).toEqual({ 'collector-a': 8, 'collector-b': 8 })
    await append(201, 400)
    await waitFor(() => store.count('flood') >= 400, 10_000, '400 points stored')
    const stored = store.recent({ measurement: 'flood', limit: 1_000 } as never).map((p) => `${p.tags.device}:${p.fields.seq}`)
    expect(new Set(stored).size).toBe(400)
    expect(store.count('flood')).toBe(400)
    expect(a.metrics.received + b.metrics.received).toBe(400)
    expect(b.metrics.received).toBeGreaterThan(0)
    // What an operator sees: both collectors alive, each partition with its holder (the lease, authoritative) and a token.
    // (A collector's own list of partitions is as of its last heartbeat, up to a renewal old.)
    const status = await clusterStatus(redis, clusterKeys(), PARTITIONS)
    expect(status.collectors.map((c) => [c.member, c.alive])).toEqual([['collector-a', true], ['collector-b', true]])
    expect(status.partitions.map((p) => p.holder).sort()).toEqual([...Array(8).fill('collector-a'), ...Array(8).fill('collector-b')])
    expect(status.partitions.every((p) => p.token !== null && p.token > 0)).toBe(true)
    await a.stop()
    let after: Record<string, number> = {}
    await waitFor(() => { void owners().then((o) => { after = o }); return after['collector-b'] === 16 }, 10_000, 'b holds all 16')
    await append(401, 450)
    await waitFor(() => store.count('flood') === 450, 10_000, '450 points stored')
    await b.stop()
    await store.close()
  }, 40_000)
})
