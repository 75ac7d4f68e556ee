/**
 * PgOutboxStore (delivery/pg-outbox-store.ts) against a real PostgreSQL:
 * the same contract as SQLite's, then what only a shared store must show —
 * two collectors claiming one sink send its deliveries in strict order,
 * each claimed once. (A held sink and a lapsed lease: test/db/schema.test.ts.)
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
})
