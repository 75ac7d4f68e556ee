/**
 * Two collectors of a group (Redis for their input, PostgreSQL for their
 * alerts), each with its HTTP API: what an operator does through one
 * collector's API shows in the other's live stream (GET /api/stream), and
 * each collector's stream shows every change once, its own included.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { apiSourceFrom, type CollectorService, createCollectorService, loadConfig } from '../../app/index.ts'
import { type RunningApi, startApiServer } from '../../dashboards/index.ts'
import type { AlertChange } from '../../shared/alert-contract.ts'
import { createLogger } from '../../shared/logger.ts'
import { waitFor } from '../helpers/broker.ts'
import { startPostgres, type RunningPostgres } from '../helpers/postgres.ts'
import { startRedis, type RunningRedis } from '../helpers/redis-server.ts'

const OPERATOR = 'operator-token-0123456789abcdef'
const VIEWER = 'viewer-token-0123456789abcdef'
const logger = createLogger({ level: 'silent' })

interface Collector { service: CollectorService, api: RunningApi, dataDir: string }

/** An API's live stream over a real socket: its `alert` events as they come. */
interface Stream { alerts: AlertChange[], fleetSeen: () => boolean, close: () => void }

async function openStream (api: RunningApi): Promise<Stream> {
  const controller = new AbortController()
  const response = await fetch(new URL('/api/stream', api.url), { headers: { authorization: `Bearer ${VIEWER}` }, signal: controller.signal })
  expect(response.status).toBe(200)
  const alerts: AlertChange[] = []
  let fleet = false
  let text = ''
  const reader = response.body!.getReader()
  const pump = async (): Promise<void> => {
    for (;;) {
      const { value, done } = await reader.read()
      if (done) return
      text += new TextDecoder().decode(value)
      let end: number
      while ((end = text.indexOf('\n\n')) >= 0) {
        const message = text.slice(0, end)
        text = text.slice(end + 2)
        const event = /^event: (\w+)\ndata: (.*)$/s.exec(message)
        if (event?.[1] === 'alert') alerts.push(JSON.parse(event[2]!) as AlertChange)
        if (event?.[1] === 'fleet') fleet = true
      }
    }
  }
  pump().catch(() => {}) // ends with the abort at close
  return { alerts, fleetSeen: () => fleet, close: () => controller.abort() }
}

const storyOf = (stream: Stream, id: string): string[] => stream.alerts.filter((c) => c.alert.id === id).map((c) => c.change)

describe('two collectors of a group and their live streams', () => {
  let redis: RunningRedis
  let postgres: RunningPostgres
  const collectors: Collector[] = []

  beforeAll(async () => {
    [redis, postgres] = await Promise.all([startRedis(), startPostgres()])
    const databaseUrl = await postgres.createDatabase('alert_feed_group')
    for (const name of ['collector-a', 'collector-b']) {
      const dataDir = mkdtempSync(join(tmpdir(), 'placeguard-feed-'))
      const config = loadConfig({
        env: { PLACEGUARD_API_TOKENS: `${OPERATOR}:operator,${VIEWER}:viewer` },
        flags: { dataDir, redisUrl: redis.url, databaseUrl, cluster: { partitions: 4, collectorName: name } },
      })
      const service = createCollectorService(config, '', logger)
      await service.start()
      const api = await startApiServer(apiSourceFrom(service, config.apiTokens), { host: '127.0.0.1', port: 0, logger })
      collectors.push({ service, api, dataDir })
    }
  }, 60_000)

  afterAll(async () => {
    for (const { service, api, dataDir } of collectors) {
      await api.close()
      await service.stop()
      rmSync(dataDir, { recursive: true, force: true })
    }
    await Promise.all([redis?.stop(), postgres?.stop()])
  })

  it('shows an acknowledge through collector a\'s API in collector b\'s stream, and a comment through b\'s in a\'s, each change once', async () => {
    const [a, b] = collectors as [Collector, Collector]
    const streams = [await openStream(a.api), await openStream(b.api)] as const
    const [atA, atB] = streams
    try {
      // Each stream has said hello (its fleet summary), so its client is listening.
      await waitFor(() => streams.every((s) => s.fleetSeen()), 10_000, 'both streams open')

      // Collector a's detection opens an alert; both streams show it.
      a.service.detection.raiseSystemAlert({ policy: 'delivery-failing', deviceId: 'sink:soc', severity: 'high', summary: 'the SOC sink refuses deliveries', evidence: { sink: 'soc' } })
      await waitFor(() => atB.alerts.some((c) => c.change === 'opened'), 10_000, 'the opening in b\'s stream')
      const id = atB.alerts.find((c) => c.change === 'opened')!.alert.id

      const ack = await fetch(new URL(`/api/alerts/${id}/ack`, a.api.url), { method: 'POST', headers: { authorization: `Bearer ${OPERATOR}` } })
      expect(ack.status).toBe(200)
      await waitFor(() => storyOf(atB, id).includes('acknowledged'), 10_000, 'a\'s acknowledge in b\'s stream')
      expect(atB.alerts.find((c) => c.alert.id === id && c.change === 'acknowledged')!.alert)
        .toMatchObject({ id, policy: 'delivery-failing', status: 'acknowledged', acknowledgedBy: expect.stringMatching(/^operator:[0-9a-f]{8}$/) })

      const comment = await fetch(new URL(`/api/alerts/${id}/comments`, b.api.url), {
        method: 'POST', headers: { authorization: `Bearer ${OPERATOR}`, 'content-type': 'application/json' }, body: JSON.stringify({ text: 'the SOC is on it' }),
      })
      expect(comment.status).toBe(200)
      // One alert's changes arrive in order: once the comment is in a stream, everything before it is too.
      await waitFor(() => streams.every((s) => storyOf(s, id).includes('commented')), 10_000, 'b\'s comment in both streams')
      expect(storyOf(atA, id)).toEqual(['opened', 'acknowledged', 'commented'])
      expect(storyOf(atB, id)).toEqual(['opened', 'acknowledged', 'commented'])
      expect(atA.alerts.find((c) => c.change === 'commented')!.alert.comments).toEqual([expect.objectContaining({ text: 'the SOC is on it' })])
    } finally {
      for (const stream of streams) stream.close()
    }
  }, 60_000)
})
