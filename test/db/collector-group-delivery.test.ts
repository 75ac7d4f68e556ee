/**
 * A collector group's deliveries in PostgreSQL (app/collector-service.ts
 * with `databaseUrl` and `redisUrl`): nothing between an alert and its
 * delivery is lost when a collector dies or the database goes away.
 *
 * - A collector that stored an alert and died before queueing its delivery:
 *   the next collector to hear the condition queues the alert's `opened`
 *   once, and no collector queues it again.
 * - PostgreSQL down while a finding arrives: the stream entry stays pending
 *   (unacknowledged) until its alert and delivery are stored, then the SOC
 *   receives it once.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type CollectorService, createCollectorService, loadConfig } from '../../app/index.ts'
import { clusterKeys, COLLECTOR_GROUP, connectRedis, partitionOf, type Redis, StreamHandoff } from '../../cluster/index.ts'
import { createDatabasePool, type Pool } from '../../db/index.ts'
import { PgAlertStore } from '../../detection/pg-alert-store.ts'
import type { Alert } from '../../shared/alert-contract.ts'
import { createLogger } from '../../shared/logger.ts'
import { waitFor } from '../helpers/broker.ts'
import { type HttpReceiver, startHttpReceiver } from '../helpers/http-receiver.ts'
import { startPostgres, type RunningPostgres } from '../helpers/postgres.ts'
import { startRedis, type RunningRedis } from '../helpers/redis-server.ts'

const logger = createLogger({ level: process.env.TEST_LOG ? 'debug' : 'silent' })
const PARTITIONS = 4

let redis: RunningRedis
let postgres: RunningPostgres
let soc: HttpReceiver
let databaseUrl: string
let pool: Pool
let client: Redis
const services: CollectorService[] = []
const dirs: string[] = []

async function startCollector (name: string): Promise<CollectorService> {
  const dataDir = mkdtempSync(join(tmpdir(), 'placeguard-group-delivery-'))
  dirs.push(dataDir)
  const config = loadConfig({
    env: { PLACEGUARD_WEBHOOK_URL: soc.url, PLACEGUARD_WEBHOOK_SECRET: `whsec_${Buffer.alloc(32, 7).toString('base64')}` },
    flags: { dataDir, redisUrl: redis.url, databaseUrl, cluster: { partitions: PARTITIONS, collectorName: name } },
  })
  const service = createCollectorService(config, '', logger)
  await service.start()
  services.push(service)
  return service
}

/** The webhook requests that carried this alert (any change). */
const requestsFor = (id: string) => soc.requests.filter((r) => (JSON.parse(r.body) as Alert).id === id)

beforeAll(async () => {
  [redis, postgres, soc] = await Promise.all([startRedis(), startPostgres(), startHttpReceiver()])
  databaseUrl = await postgres.createDatabase('group_delivery')
  client = connectRedis({ url: redis.url, name: 'test', logger })
}, 60_000)

afterAll(async () => {
  for (const service of services) await service.stop()
  await pool?.end()
  client?.disconnect()
  await Promise.all([redis?.stop(), postgres?.stop(), soc?.stop()])
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})

describe('deliveries of a collector group in PostgreSQL', () => {
  it('queues once the opening of an alert whose collector died before queueing it, whichever collector hears it next', async () => {
    const a = await startCollector('collector-a')
    const b = await startCollector('collector-b')
    try {
      // The dead collector's work: the alert is in the database, its delivery was never queued.
      pool = createDatabasePool({ url: databaseUrl, applicationName: 'the-dead-collector', logger })
      const dead = new PgAlertStore({ pool })
      const now = new Date().toISOString()
      const { alert: stored } = await dead.raise({
        id: '00000000-0000-4000-9000-00000000d1ed', policy: 'delivery-failing', severity: 'high', deviceId: 'sink:archive', site: null, kind: null,
        summary: 'the archive sink refuses deliveries', detectedAt: now, status: 'open', evidence: { sink: 'archive' }, stride: 'Denial of service', attack: null,
        lastSeenAt: now, occurrences: 1, acknowledgedBy: null, resolvedAt: null, resolution: null, response: null, comments: [],
      }, { severity: 'high', summary: 'x', evidence: {}, lastSeenAt: now })

      const repeat = { policy: 'delivery-failing' as const, deviceId: 'sink:archive', severity: 'high' as const, summary: 'the archive sink refuses deliveries', evidence: { sink: 'archive' } }
      a.detection.raiseSystemAlert(repeat)
      await waitFor(() => requestsFor(stored.id).length > 0, 15_000, 'the opening at the SOC')
      const queued = async () => (await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM deliveries WHERE alert_id = $1', [stored.id])).rows[0]!.n
      await waitFor(async () => await queued() === 0, 15_000, 'the delivery settled')
      // Heard again, by the same collector and by the other: nothing more is queued.
      a.detection.raiseSystemAlert(repeat)
      b.detection.raiseSystemAlert(repeat)
      await a.settled()
      await b.settled()
      // Whatever was queued is sent and settled; a second delivery would reach the SOC too.
      await waitFor(async () => await queued() === 0, 15_000, 'the outbox empty')
      expect(requestsFor(stored.id).map((r) => (JSON.parse(r.body) as Alert).occurrences)).toHaveLength(1)
      expect((JSON.parse(requestsFor(stored.id)[0]!.body) as Alert)).toMatchObject({ id: stored.id, status: 'open' })
      expect((await a.detection.alerts.get(stored.id))?.occurrences).toBe(4)
    } finally {
      // The next test's collector must read every partition alone.
      for (const service of services.splice(0)) await service.stop()
    }
  }, 60_000)

  it('keeps a finding\'s stream entry pending while PostgreSQL is down, and delivers its alert once after', async () => {
    const collector = await startCollector('collector-c')
    const keys = clusterKeys()
    const device = 'flood-outage-1'
    const stream = keys.stream(partitionOf(device, PARTITIONS))
    const pending = async () => (await client.xpending(stream, COLLECTOR_GROUP) as [number])[0]
    const received = collector.metrics().received
    await postgres.kill()
    const event = { type: 'acl-denied', at: new Date().toISOString(), deviceId: device, site: 'riverside', kind: 'flood', reason: 'publish outside own topic', topic: 'places/riverside/flood/flood-other/telemetry' }
    await new StreamHandoff({ redis: client, keys, partitions: PARTITIONS }).append({
      partitionKey: device, topic: '$SYS/placeguard/events/acl-denied', node: 'node-a', receivedAtMs: Date.now(), payload: Buffer.from(JSON.stringify(event)),
    })
    // Read and decoded (the embedded store took its point), but its alert cannot be stored: not acknowledged.
    await waitFor(() => collector.metrics().received > received && collector.metrics().eventsStored > 0, 15_000, 'the event read and stored')
    await new Promise((resolve) => setTimeout(resolve, 1_500))
    expect(await pending()).toBe(1)

    await postgres.restart()
    await waitFor(async () => await pending() === 0, 60_000, 'the entry acknowledged once its alert is stored')
    const alerts = await collector.detection.alerts.list({ deviceId: device })
    expect(alerts.map((a) => a.policy)).toEqual(['acl-violation'])
    await waitFor(() => requestsFor(alerts[0]!.id).length > 0, 30_000, 'the alert at the SOC')
    await collector.settled()
    expect(new Set(requestsFor(alerts[0]!.id).map((r) => r.headers['webhook-id'])).size).toBe(1)
  }, 120_000)
})
