/**
 * PgAlertStore (detection/pg-alert-store.ts) against a real PostgreSQL:
 * the same contract as SQLite's, then what only a shared store must show —
 * collectors with pools of their own raising one condition at once make
 * one live alert, and every write leaves its trace in alert_changes.
 */
import { describe, expect, it } from 'vitest'
import { AlertBook } from '../../detection/alert-book.ts'
import { PgAlertStore } from '../../detection/pg-alert-store.ts'
import { showFences, StaleLeaseError } from '../../shared/fencing.ts'
import type { Alert } from '../../shared/alert-contract.ts'
import { alertStoreContract } from '../detection/alert-store.contract.ts'
import { pgPlaces } from '../helpers/pg-place.ts'

const pg = pgPlaces('alerts')

alertStoreContract('PostgreSQL', pg.newPlace((pool) => new PgAlertStore({ pool })))

let n = 0
function alert (deviceId: string): Alert {
  const at = new Date(Date.UTC(2026, 2, 1, 10, 0, ++n)).toISOString()
  return {
    id: `00000000-0000-4000-9000-${String(n).padStart(12, '0')}`, policy: 'rate-burst', severity: 'high', deviceId, site: 'riverside', kind: 'flood',
    summary: `burst ${n}`, detectedAt: at, status: 'open', evidence: { n }, stride: 'Denial of service', attack: null, lastSeenAt: at, occurrences: 1,
    acknowledgedBy: null, resolvedAt: null, resolution: null, response: null, comments: [],
  }
}
const sighting = (a: Alert) => ({ severity: a.severity, summary: a.summary, evidence: a.evidence, lastSeenAt: a.lastSeenAt })

describe('PgAlertStore shared by a collector group', () => {
  it('two collectors raising the same (policy, device) at once make one live alert, and both answer its id', async () => {
    const stores = [new PgAlertStore({ pool: pg.pool('collector-a') }), new PgAlertStore({ pool: pg.pool('collector-b') })]
    for (let round = 0; round < 10; round++) {
      const device = `flood-race-${round}`
      const raised = await Promise.all(stores.flatMap((store) => [alert(device), alert(device)].map((a) => store.raise(a, sighting(a)))))
      expect(raised.filter((r) => r.change === 'opened')).toHaveLength(1)
      expect(new Set(raised.map((r) => r.alert.id)).size).toBe(1)
      const page = await stores[0]!.page({ deviceId: device }, 10)
      expect(page.total).toBe(1)
      expect(page.items[0]).toMatchObject({ id: raised[0]!.alert.id, occurrences: 4, status: 'open' })
    }
  })

  it('two collectors updating one alert at once lose neither change: the row lock serializes them', async () => {
    const [a, b] = [new PgAlertStore({ pool: pg.pool('update-a') }), new PgAlertStore({ pool: pg.pool('update-b') })]
    const { alert: opened } = await a.raise(alert('flood-notes'), sighting(alert('flood-notes')))
    const note = (by: string) => (x: Alert): Alert => ({ ...x, comments: [...x.comments, { by, at: x.lastSeenAt, text: by }] })
    await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).update(opened.id, note(`op-${i}`))))
    expect((await b.get(opened.id))?.comments.map((c) => c.by).sort()).toEqual(Array.from({ length: 20 }, (_, i) => `op-${i}`).sort())
  })

  it('keeps each alert\'s history in alert_changes, in order, with the operator for their actions', async () => {
    const pool = pg.pool('history')
    const store = new PgAlertStore({ pool })
    const first = alert('flood-history')
    const { alert: opened } = await store.raise(first, sighting(first))
    await store.raise(alert('flood-history'), sighting(alert('flood-history')))
    await store.update(opened.id, (x) => ({ ...x, status: 'acknowledged', acknowledgedBy: 'operator:3f2a' }))
    await store.update(opened.id, (x) => ({ ...x, comments: [{ by: 'operator:77aa', at: x.lastSeenAt, text: 'looking' }] }))
    await store.updateLive('rate-burst', 'flood-history', (x) => ({ ...x, status: 'resolved', resolvedAt: '2026-03-02T00:00:00.000Z', resolution: 'fixed' }))
    const { rows } = await pool.query<{ change: string, by: string | null, occurrences: number }>(
      'SELECT change, by, (alert ->> \'occurrences\')::int AS occurrences FROM alert_changes WHERE alert_id = $1 ORDER BY seq', [opened.id])
    expect(rows).toEqual([
      { change: 'opened', by: null, occurrences: 1 },
      { change: 'updated', by: null, occurrences: 2 },
      { change: 'acknowledged', by: 'operator:3f2a', occurrences: 2 },
      { change: 'commented', by: 'operator:77aa', occurrences: 2 },
      { change: 'resolved', by: null, occurrences: 2 },
    ])
    expect(await store.deleteResolvedBefore('2026-03-03T00:00:00.000Z')).toBe(1)
    expect((await pool.query('SELECT 1 FROM alert_changes WHERE alert_id = $1', [opened.id])).rowCount).toBe(0)
  })
})

describe('PgAlertStore fenced by partition leases (shared/fencing.ts)', () => {
  it('refuses detection\'s writes under a stale lease once the new holder has shown its token, and takes the new holder\'s and operators\'', async () => {
    const pool = pg.pool('fence-old')
    // Collector "old" read partition 3 under token 7; "new" took it over with token 8.
    const old = new PgAlertStore({ pool, fence: (deviceId) => deviceId.startsWith('p3-') ? { partition: 3, token: 7 } : undefined })
    const fresh = new PgAlertStore({ pool: pg.pool('fence-new'), fence: (deviceId) => deviceId.startsWith('p3-') ? { partition: 3, token: 8 } : undefined })
    const before = alert('p3-flood-1')
    const { alert: opened } = await old.raise(before, sighting(before))
    expect(await showFences(pg.pool('fence-take'), [{ partition: 3, token: 8 }])).toEqual([])

    const late = alert('p3-flood-2')
    await expect(old.raise(late, sighting(late))).rejects.toBeInstanceOf(StaleLeaseError)
    await expect(old.updateLive('rate-burst', 'p3-flood-1', (x) => ({ ...x, status: 'resolved', resolvedAt: x.lastSeenAt, resolution: 'auto' }))).rejects.toBeInstanceOf(StaleLeaseError)
    expect((await fresh.page({ deviceId: 'p3-flood-2' }, 10)).total).toBe(0)
    expect((await fresh.get(opened.id))?.status).toBe('open')
    // A device of no partition it holds, and an operator's write by id, carry no lease.
    const elsewhere = alert('p9-flood')
    expect((await old.raise(elsewhere, sighting(elsewhere))).change).toBe('opened')
    expect((await old.update(opened.id, (x) => ({ ...x, status: 'acknowledged', acknowledgedBy: 'operator:1a2b' })))?.status).toBe('acknowledged')
    // The new holder writes; the stale token does not come back to life after it.
    expect((await fresh.raise(late, sighting(late))).change).toBe('opened')
    expect(await showFences(pool, [{ partition: 3, token: 7 }])).toEqual([3])
  })

  it('a book over a stale lease gives the write up at once instead of retrying it', async () => {
    const store = new PgAlertStore({ pool: pg.pool('fence-book'), fence: () => ({ partition: 5, token: 1 }) })
    await showFences(pg.pool('fence-book-take'), [{ partition: 5, token: 2 }])
    const book = new AlertBook({ asyncStore: store, retryMs: 10 })
    await expect(book.raise({ policy: 'rate-burst', deviceId: 'flood-x', severity: 'high', summary: 's', evidence: {} })).rejects.toBeInstanceOf(StaleLeaseError)
    expect(book.writesRetried).toBe(0)
  })
})
