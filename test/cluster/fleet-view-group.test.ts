/**
 * The fleet view of a collector group, end to end: two collector services
 * in cluster mode (Redis streams, partition leases) with one PostgreSQL,
 * each receiving only its half of the partitions. Each one's fleet view
 * lists every device with its exact message count and latest firmware;
 * when partitions move (a collector joins, one leaves) every count goes on
 * from where the group had it, with no message lost or counted twice, and
 * the devices' new holder is who the others believe.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createCollectorService, type CollectorService } from '../../app/collector-service.ts'
import { loadConfig } from '../../app/config.ts'
import { clusterKeys, connectRedis, type Redis, StreamHandoff } from '../../cluster/index.ts'
import { createLogger } from '../../shared/logger.ts'
import { waitFor } from '../helpers/broker.ts'
import { startPostgres, type RunningPostgres } from '../helpers/postgres.ts'
import { startRedis, type RunningRedis } from '../helpers/redis-server.ts'

const logger = createLogger({ level: 'silent' })
const PARTITIONS = 8
const DEVICES = Array.from({ length: 12 }, (_, i) => `flood-${String(i + 1).padStart(2, '0')}`)
const keys = clusterKeys()
let redisServer: RunningRedis
let postgres: RunningPostgres
let redis: Redis
let dir: string
let databaseUrl: string

beforeAll(async () => {
  [redisServer, postgres] = await Promise.all([startRedis(), startPostgres()])
  redis = connectRedis({ url: redisServer.url, name: 'test', logger })
  dir = mkdtempSync(join(tmpdir(), 'pg-fleet-view-group-'))
  databaseUrl = await postgres.createDatabase('fleet_view_group')
}, 60_000)
afterAll(async () => {
  redis?.disconnect()
  await Promise.all([redisServer?.stop(), postgres?.stop()])
  rmSync(dir, { recursive: true, force: true })
})

function collector (name: string): CollectorService {
  const dataDir = join(dir, name)
  mkdirSync(dataDir, { recursive: true })
  return createCollectorService(loadConfig({ env: {}, flags: { dataDir, databaseUrl, redisUrl: redisServer.url, cluster: { partitions: PARTITIONS, collectorName: name } } }), '', logger)
}

async function held (name: string): Promise<number> {
  const pipeline = redis.pipeline()
  for (let p = 0; p < PARTITIONS; p++) pipeline.hget(keys.lease(p), 'owner')
  return (await pipeline.exec())!.filter(([, owner]) => owner === name).length
}

describe('the fleet view of a collector group', () => {
  it('lists every device on each collector, with exact counts and the new holder\'s facts across partition moves', async () => {
    const handoff = new StreamHandoff({ redis, keys, partitions: PARTITIONS })
    const sent = new Map(DEVICES.map((id) => [id, 0]))
    /** One message from every device, through the streams as broker nodes append them. */
    const round = async (fw: string) => {
      for (const id of DEVICES) {
        const seq = sent.get(id)! + 1
        sent.set(id, seq)
        const now = Date.now()
        await handoff.append({
          partitionKey: id, topic: `places/riverside/flood/${id}/telemetry`, node: 'node-1', receivedAtMs: now,
          payload: Buffer.from(JSON.stringify({ ts: now, seq, fw, level_cm: 40, battery_v: 3.6 })),
        })
      }
    }
    /** Every device in the collector's view with the messages sent so far and this firmware. */
    const whole = (service: CollectorService, fw: string) => () => DEVICES.every((id) => {
      const device = service.fleet.summaryOf(id)
      return device !== undefined && device.messages === sent.get(id) && device.firmware === fw
    })
    const a = collector('collector-a')
    const b = collector('collector-b')
    await a.start()
    try {
      // A alone receives every device first; when B joins, A's half of them moves to B, whose facts then win in A's view.
      await waitFor(async () => await held('collector-a') === PARTITIONS, 15_000, 'A holding all 8')
      await round('3.1.0')
      await waitFor(whole(a, '3.1.0'), 20_000, 'every device in A\'s view')
      await b.start()
      await waitFor(async () => await held('collector-b') === PARTITIONS / 2 && await held('collector-a') === PARTITIONS / 2, 15_000, 'a 4/4 split')
      // Each collector receives half the devices and lists all of them once both have flushed and read (every 5 s);
      // the second time round the other half's counts and firmware move on in each view.
      for (const fw of ['3.2.0', '3.2.1']) {
        for (let i = 0; i < 3; i++) await round(fw)
        await waitFor(whole(a, fw), 20_000, `the whole fleet in A's view, on ${fw}`)
        await waitFor(whole(b, fw), 20_000, `the whole fleet in B's view, on ${fw}`)
      }
      expect(a.fleet.summary().devices).toBe(DEVICES.length)

      // B leaves: A takes its partitions, and its devices' counts go on from the group's.
      await b.stop()
      await waitFor(async () => await held('collector-a') === PARTITIONS, 15_000, 'A holding all 8')
      for (let i = 0; i < 2; i++) await round('3.3.0')
      await waitFor(whole(a, '3.3.0'), 20_000, 'every count exact on A after the move')
    } finally {
      await a.stop()
      await b.stop().catch(() => undefined)
    }
  }, 120_000)
})
