/**
 * Two collectors' outboxes over one PostgreSQL (a pool each, a
 * PgOutboxStore each) sending to one real webhook receiver: every alert
 * change is accepted once under its delivery id (`webhook-id`), in the
 * order it was queued, whichever collector queued it and whichever sent it
 * — also when one collector stops mid-flow, or loses the database while it
 * holds the sink (its lease lapses and the other takes over).
 */
import { randomBytes } from 'node:crypto'
import type { ServerResponse } from 'node:http'
import type { Pool } from 'pg'
import { Webhook } from 'standardwebhooks'
import { afterEach, describe, expect, it } from 'vitest'
import { Outbox } from '../../delivery/outbox.ts'
import { PgOutboxStore } from '../../delivery/pg-outbox-store.ts'
import { createSink } from '../../delivery/sinks.ts'
import type { AlertChange } from '../../shared/alert-contract.ts'
import { createLogger } from '../../shared/logger.ts'
import { alertOf } from '../helpers/alerts.ts'
import { waitFor } from '../helpers/broker.ts'
import { type HttpReceiver, type ReceivedRequest, startHttpReceiver } from '../helpers/http-receiver.ts'
import { pgPlaces } from '../helpers/pg-place.ts'

const pg = pgPlaces('outbox_group')
const secret = `whsec_${randomBytes(24).toString('base64')}`
const logger = createLogger({ level: 'silent' })

const cleanup: Array<() => Promise<unknown> | void> = []
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step()
})

interface Accepted { id: string, alertId: string, via: string }

/** A receiver that answers 200 after `delayMs` (a send takes a while) and keeps what it accepted, verified. */
async function receiverFor (delayMs: number, hold?: (request: ReceivedRequest, response: ServerResponse) => boolean): Promise<{ receiver: HttpReceiver, accepted: Accepted[] }> {
  const accepted: Accepted[] = []
  const receiver = await startHttpReceiver((request, _index, response) => {
    if (hold?.(request, response)) return
    setTimeout(() => {
      const alert = new Webhook(secret).verify(request.body, request.headers as Record<string, string>) as { id: string }
      accepted.push({ id: String(request.headers['webhook-id']), alertId: alert.id, via: new URL(request.path, 'http://x').searchParams.get('via')! })
      response.writeHead(200).end('ok')
    }, delayMs)
  })
  cleanup.push(() => receiver.stop())
  return { receiver, accepted }
}

/** One collector's outbox: its own pool and store, the shared sink named `webhook`, its requests marked `?via=<holder>`. */
function collector (receiver: HttpReceiver, holder: string, pool: Pool, leaseMs?: number): Outbox<PgOutboxStore> {
  const sink = createSink({ type: 'webhook', url: `${receiver.url}?via=${holder}`, secrets: [secret], minSeverity: 'info' })
  const outbox = new Outbox({
    store: new PgOutboxStore({ pool, holder, leaseMs }), sinks: [{ sink, route: { minSeverity: 'info' } }],
    deadLetterAfterMs: 3_600_000, logger, baseBackoffMs: 100, maxBackoffMs: 1_000,
  })
  cleanup.push(() => outbox.stop())
  return outbox
}

function changes (count: number): AlertChange[] {
  return Array.from({ length: count }, (_, i) => ({ change: 'opened', alert: alertOf({ deviceId: `flood-${String(i).padStart(3, '0')}` }) }))
}

/** Half the changes through each collector, alternating, each durable before the next. */
async function enqueueAlternately (outboxes: Array<Outbox<PgOutboxStore>>, queued: AlertChange[]): Promise<void> {
  for (const [i, change] of queued.entries()) expect(await outboxes[i % outboxes.length]!.enqueue(change)).toBe(1)
}

/** Each change accepted once, under one delivery id, in the order queued. */
function expectEachOnceInOrder (accepted: Accepted[], queued: AlertChange[]): void {
  expect(accepted.map((a) => a.alertId)).toEqual(queued.map((c) => c.alert.id))
  expect(new Set(accepted.map((a) => a.id)).size).toBe(queued.length)
}

describe('outboxes of a collector group over one PostgreSQL', () => {
  it('each alert change queued through either collector reaches the webhook once, with one delivery id, in order', async () => {
    const { receiver, accepted } = await receiverFor(2)
    const outboxes = [collector(receiver, 'a', pg.pool('collector-a')), collector(receiver, 'b', pg.pool('collector-b'))]
    for (const outbox of outboxes) outbox.start()
    const queued = changes(50)
    await enqueueAlternately(outboxes, queued)
    await waitFor(() => accepted.length >= 50, 30_000, 'every change accepted')
    await new Promise((resolve) => setTimeout(resolve, 1_500))
    expectEachOnceInOrder(accepted, queued)
    expect(receiver.requests).toHaveLength(50)
    for (const outbox of outboxes) expect((await outbox.metrics())[0]).toMatchObject({ pending: 0, deadLettered: 0 })
  }, 60_000)

  it('a collector stopped mid-flow: the other delivers the rest, none twice', async () => {
    const { receiver, accepted } = await receiverFor(20)
    const [a, b] = [collector(receiver, 'a', pg.pool('collector-a')), collector(receiver, 'b', pg.pool('collector-b'))]
    const queued = changes(50)
    await enqueueAlternately([a, b], queued)
    a.start()
    await waitFor(() => accepted.length >= 10, 20_000, 'a sending')
    b.start()
    await a.stop()
    const byA = accepted.length
    await waitFor(() => accepted.length >= 50, 30_000, 'b delivering the rest')
    await new Promise((resolve) => setTimeout(resolve, 1_500))
    expectEachOnceInOrder(accepted, queued)
    expect(receiver.requests).toHaveLength(50)
    expect(accepted.slice(byA).every((x) => x.via === 'b')).toBe(true)
    // Each sent what it claimed; before the stop the two may have taken turns.
    const [byAMetrics, byBMetrics] = [(await a.metrics())[0]!, (await b.metrics())[0]!]
    expect(byAMetrics.delivered + byBMetrics.delivered).toBe(50)
    expect(byBMetrics).toMatchObject({ pending: 0, delivered: accepted.filter((x) => x.via === 'b').length })
  }, 60_000)

  it('a collector losing the database while it holds the sink: its lease lapses, the other sends the head again and the rest, none accepted twice', async () => {
    let dead = false
    let dropped: string | undefined
    const { receiver, accepted } = await receiverFor(10, (request, response) => {
      // a's 16th request: a loses the database, and the request its answer (a partition).
      if (dead || !request.path.includes('via=a') || accepted.length < 15) return false
      dead = true
      dropped = String(request.headers['webhook-id'])
      void terminate('collector-a').then(() => response.socket?.destroy())
      return true
    })
    const poolA = pg.pool('collector-a')
    const poolB = pg.pool('collector-b')
    const terminate = (name: string) => poolB.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [name])
    // From the partition on, a's pool reaches no server (its connections were cut above).
    const unreachable = () => Promise.reject(new Error('connect ETIMEDOUT'))
    const cutOff = new Proxy(poolA, {
      get: (target, key) => (dead && (key === 'query' || key === 'connect')) ? unreachable : Reflect.get(target, key, target) as unknown,
    })
    const leaseMs = 1_500
    const [a, b] = [collector(receiver, 'a', cutOff, leaseMs), collector(receiver, 'b', poolB, leaseMs)]
    const queued = changes(50)
    await enqueueAlternately([a, b], queued)
    a.start()
    // b joins once a holds the sink and has lost the database: b finds the sink held until a's lease lapses.
    await waitFor(() => dead, 20_000, 'a partitioned mid-send')
    const partitionedAtMs = Date.now()
    b.start()
    await waitFor(() => accepted.length >= 16, 20_000, 'b taking the sink over')
    expect(Date.now() - partitionedAtMs).toBeGreaterThanOrEqual(leaseMs - 500)
    await waitFor(() => accepted.length >= 50, 30_000, 'b delivering the rest')
    await new Promise((resolve) => setTimeout(resolve, 1_500))
    expectEachOnceInOrder(accepted, queued)
    // The dropped request was a's last; b sent it again under the same id, then the rest.
    const byA = accepted.filter((x) => x.via === 'a').length
    expect(byA).toBe(15)
    expect(accepted[byA]!.id).toBe(dropped)
    expect(accepted.slice(byA).every((x) => x.via === 'b')).toBe(true)
    expect((await b.metrics())[0]).toMatchObject({ pending: 0, delivered: 35 })
  }, 60_000)
})
