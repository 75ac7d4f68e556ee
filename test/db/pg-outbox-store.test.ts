/**
 * PgOutboxStore (delivery/pg-outbox-store.ts) against a real PostgreSQL:
 * the same contract as SQLite's, then what only a shared store must show —
 * two collectors claiming one sink send its deliveries in strict order,
 * each claimed once.
 */
import { describe, expect, it } from 'vitest'
import { PgOutboxStore } from '../../delivery/pg-outbox-store.ts'
import type { NewDelivery } from '../../delivery/outbox-store.ts'
import { outboxStoreContract } from '../delivery/outbox-store.contract.ts'
import { pgPlaces } from '../helpers/pg-place.ts'

const pg = pgPlaces('outbox')

outboxStoreContract('PostgreSQL', pg.newPlace((pool) => new PgOutboxStore({ pool })))

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, Math.random() * ms))
function deliveries (sink: string, count: number): NewDelivery[] {
  return Array.from({ length: count }, (_, i) => ({
    id: `msg_${sink}_${i}`, sink, alertId: `alr_${i % 7}`, change: 'opened' as const, createdAtMs: Date.now(),
    alert: { id: `alr_${i % 7}` } as NewDelivery['alert'],
  }))
}

describe('PgOutboxStore shared by a collector group', () => {
  it('two collectors claiming one sink send its deliveries in strict order, each claimed once, and both take turns', async () => {
    const queue = deliveries('webhook', 60)
    const stores = [new PgOutboxStore({ pool: pg.pool('outbox-a'), holder: 'a' }), new PgOutboxStore({ pool: pg.pool('outbox-b'), holder: 'b' })]
    await stores[0]!.add(queue)
    const sent: Array<{ id: string, by: string }> = []
    const work = async (store: PgOutboxStore, me: string): Promise<void> => {
      while (sent.length < queue.length) {
        const { deliveries: claimed } = await store.claim('webhook', 1 + Math.floor(Math.random() * 3), Date.now())
        if (claimed.length === 0) { await pause(3); continue }
        await pause(5) // the HTTP call, outside any transaction
        sent.push(...claimed.map((d) => ({ id: d.id, by: me })))
        await store.delivered(claimed)
        await pause(3)
      }
    }
    await Promise.all([work(stores[0]!, 'a'), work(stores[1]!, 'b')])
    expect(sent.map((s) => s.id)).toEqual(queue.map((d) => d.id))
    expect(new Set(sent.map((s) => s.by))).toEqual(new Set(['a', 'b']))
    expect(await stores[1]!.sizes()).toEqual(new Map([]))
  })

  it('gives a second collector nothing while the first holds the sink (its row lock, then its lease), and the successor once the head is settled', async () => {
    const [d1, d2] = deliveries('slack', 2)
    const pool = pg.pool('outbox-hold')
    const a = new PgOutboxStore({ pool, holder: 'a' })
    const b = new PgOutboxStore({ pool: pg.pool('outbox-hold-b'), holder: 'b' })
    await a.add([d1!, d2!])
    // Mid-claim: the sink's row is locked, and B skips it rather than take d2.
    const client = await pool.connect()
    try {
      await client.query('BEGIN')
      await client.query('SELECT name FROM sinks WHERE name = $1 FOR UPDATE', ['slack'])
      expect(await b.claim('slack', 1, Date.now())).toEqual({ deliveries: [], nextAttemptAtMs: null })
    } finally {
      await client.query('ROLLBACK')
      client.release()
    }
    const claimed = await a.claim('slack', 1, Date.now())
    expect(claimed.deliveries.map((d) => d.id)).toEqual([d1!.id])
    // A sends d1 holding the sink by its lease.
    expect(await b.claim('slack', 1, Date.now())).toEqual({ deliveries: [], nextAttemptAtMs: null })
    await a.delivered(claimed.deliveries)
    expect((await b.claim('slack', 1, Date.now())).deliveries.map((d) => d.id)).toEqual([d2!.id])
  })

  it('passes a dead claimant\'s sink on when its lease lapses: the next collector sends the same head again, same id', async () => {
    const queue = deliveries('pagerduty', 2)
    const a = new PgOutboxStore({ pool: pg.pool('lease-a'), holder: 'a', leaseMs: 300 })
    const b = new PgOutboxStore({ pool: pg.pool('lease-b'), holder: 'b' })
    await a.add(queue)
    expect((await a.claim('pagerduty', 1, Date.now())).deliveries.map((d) => d.id)).toEqual([queue[0]!.id])
    // A dies without settling.
    expect((await b.claim('pagerduty', 1, Date.now())).deliveries).toEqual([])
    const deadline = Date.now() + 5_000
    let taken: string[] = []
    while (taken.length === 0 && Date.now() < deadline) {
      await pause(100)
      taken = (await b.claim('pagerduty', 1, Date.now())).deliveries.map((d) => d.id)
    }
    expect(taken).toEqual([queue[0]!.id])
  })
})
