/**
 * A collector of a group queues each alert change for its sinks once, in
 * the order the changes came, in the group's PostgreSQL outbox. Queued
 * twice, a change could land again after the sink had confirmed the first
 * copy (the confirmation deletes it), and go out a second time.
 */
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type CollectorService, createCollectorService, loadConfig } from '../../app/index.ts'
import { createLogger } from '../../shared/logger.ts'
import { waitFor } from '../helpers/broker.ts'
import { type HttpReceiver, startHttpReceiver } from '../helpers/http-receiver.ts'
import { startPostgres, type RunningPostgres } from '../helpers/postgres.ts'
import { startRedis, type RunningRedis } from '../helpers/redis-server.ts'

const ALERTS = 20
let redis: RunningRedis
let postgres: RunningPostgres
let soc: HttpReceiver
let service: CollectorService
let db: pg.Pool
let dataDir: string

beforeAll(async () => {
  [redis, postgres, soc] = await Promise.all([startRedis(), startPostgres(), startHttpReceiver()])
  dataDir = mkdtempSync(join(tmpdir(), 'pg-collector-delivery-'))
  const config = loadConfig({
    env: {},
    flags: {
      dataDir, redisUrl: redis.url, databaseUrl: postgres.url, cluster: { partitions: 4, collectorName: 'collector-a' },
      delivery: { sinks: [{ type: 'webhook', url: soc.url, secrets: [`whsec_${randomBytes(24).toString('base64')}`] }] },
    },
  })
  service = createCollectorService(config, '', createLogger({ level: 'silent' }))
  await service.start()
  db = new pg.Pool({ connectionString: postgres.url, max: 1 })
  db.on('error', () => {}) // the server's fast shutdown at the end
}, 60_000)

afterAll(async () => {
  await service?.stop()
  await db?.end()
  await Promise.all([redis?.stop(), postgres?.stop(), soc?.stop()])
  rmSync(dataDir, { recursive: true, force: true })
})

describe('a collector\'s deliveries in the group\'s outbox', () => {
  it('sends each of 20 alerts opened at once in one request, in the order they opened', async () => {
    const opened: string[] = []
    const unsubscribe = service.onAlertChange((change) => { if (change.change === 'opened') opened.push(change.alert.id) })
    for (let i = 0; i < ALERTS; i++) {
      service.detection.raiseSystemAlert({ policy: 'delivery-failing', deviceId: `sink:soc-${i}`, severity: 'high', summary: `sink soc-${i} refuses deliveries`, evidence: { sink: `soc-${i}` } })
    }
    const queued = async () => (await db.query<{ queued: number }>('SELECT count(*)::int AS queued FROM deliveries')).rows[0]!.queued
    await waitFor(async () => opened.length === ALERTS && new Set(soc.requests.map((r) => r.headers['webhook-id'])).size === ALERTS && await queued() === 0,
      20_000, `${ALERTS} alerts delivered and the outbox empty`)
    unsubscribe()
    const sent = soc.requests.map((request) => (JSON.parse(request.body) as { id: string }).id)
    expect(sent).toHaveLength(ALERTS)
    expect(sent).toEqual(opened)
  }, 60_000)
})
