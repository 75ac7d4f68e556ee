/**
 * What every OutboxStore must do (delivery/outbox-store.ts), whatever keeps
 * the queue: run by sqlite-outbox-store.test.ts for SQLite, and by the
 * PostgreSQL store's (test/db/pg-outbox-store.test.ts), against a place of
 * its own. Every store call is awaited, so a synchronous store and an
 * asynchronous one (AsyncOutboxStore) pass the same assertions.
 */
import { describe, expect, it } from 'vitest'
import type { AsyncOutboxStore, NewDelivery, OutboxStore } from '../../delivery/outbox-store.ts'
import type { DeliveredChange } from '../../delivery/sink.ts'
import type { Alert } from '../../shared/alert-contract.ts'
import { type StorePlace, storesPerTest } from '../helpers/store-place.ts'

const T0 = Date.parse('2026-03-01T10:00:00.000Z')

function alert (id: string, status: Alert['status'] = 'open'): Alert {
  return {
    id, policy: 'acl-violation', severity: 'high', deviceId: `device-of-${id}`, site: 'riverside', kind: 'flood', summary: 'publish outside own topic',
    detectedAt: '2026-03-01T09:59:00.000Z', status, evidence: { topic: 'places/#', count: 3 }, stride: 'Elevation of privilege', attack: null,
    lastSeenAt: '2026-03-01T09:59:00.000Z', occurrences: 1, acknowledgedBy: null, resolvedAt: null, resolution: null, response: null, comments: [],
  }
}

let ids = 0
function delivery (sink: string, alertId: string, createdAtMs: number, change: DeliveredChange = 'opened'): NewDelivery {
  return { id: `msg_${++ids}`, sink, alertId, change, alert: alert(alertId, change === 'resolved' ? 'resolved' : change === 'acknowledged' ? 'acknowledged' : 'open'), createdAtMs }
}

export function outboxStoreContract (name: string, newPlace: () => StorePlace<OutboxStore | AsyncOutboxStore>): void {
  describe(`OutboxStore contract: ${name}`, () => {
    const { open } = storesPerTest(newPlace)
    const idsOf = (deliveries: Array<{ id: string }>) => deliveries.map((d) => d.id)

    it('hands a sink its head in the order added, at most the batch asked for, untouched until settled', async () => {
      const store = open()
      const a = [delivery('webhook', 'a1', T0), delivery('webhook', 'a2', T0), delivery('webhook', 'a3', T0 + 1)]
      const b = [delivery('slack', 'a1', T0)]
      await store.add([a[0]!, b[0]!, a[1]!])
      await store.add([a[2]!])
      const claim = await store.claim('webhook', 2, T0 + 5)
      expect(idsOf(claim.deliveries)).toEqual([a[0]!.id, a[1]!.id])
      expect(claim.deliveries[0]).toEqual({ ...a[0], attempts: 0, nextAttemptAtMs: T0, lastError: null })
      expect(idsOf((await store.claim('webhook', 10, T0 + 5)).deliveries)).toEqual(idsOf(a))
      expect(idsOf((await store.claim('slack', 10, T0 + 5)).deliveries)).toEqual([b[0]!.id])
      expect(await store.claim('pagerduty', 10, T0 + 5)).toEqual({ deliveries: [], nextAttemptAtMs: null })
      expect((await store.sizes()).get('webhook')).toEqual({ pending: 3, deadLettered: 0 })
    })

    it('adds all of a batch or none of it', async () => {
      const store = open()
      const first = delivery('webhook', 'a1', T0)
      await store.add([first])
      // A delivery the store cannot keep (no sink) fails the whole batch.
      await expect(async () => { await store.add([delivery('webhook', 'a2', T0), { ...delivery('webhook', 'a3', T0), sink: null as unknown as string }]) }).rejects.toThrow()
      expect(idsOf((await store.claim('webhook', 10, T0)).deliveries)).toEqual([first.id])
    })

    it('adds a delivery once however often it is added: queued, dead-lettered or in the same batch', async () => {
      const store = open()
      const [a1, a2] = [delivery('webhook', 'a1', T0), delivery('webhook', 'a2', T0 + 1)]
      await store.add([a1!, a1!])
      await store.add([a1!, a2!])
      expect(idsOf((await store.claim('webhook', 10, T0 + 5)).deliveries)).toEqual([a1!.id, a2!.id])
      await store.deadLetter([(await store.claim('webhook', 1, T0 + 5)).deliveries[0]!], 'refused')
      await store.add([{ ...a1!, createdAtMs: T0 + 2 }])
      expect(idsOf((await store.claim('webhook', 10, T0 + 5)).deliveries)).toEqual([a2!.id])
      expect(idsOf(await store.deadLetters())).toEqual([a1!.id])
    })

    it('skips, when asked, a delivery whose sink confirmed a change of its alert', async () => {
      const store = open()
      const opened = delivery('webhook', 'a1', T0)
      await store.add([opened])
      await store.delivered((await store.claim('webhook', 10, T0)).deliveries)
      const again = { ...opened, id: 'msg_again', createdAtMs: T0 + 3 }
      const otherSink = { ...opened, id: 'msg_other', sink: 'slack' }
      const otherAlert = delivery('webhook', 'a2', T0 + 2)
      await store.add([again, otherSink, otherAlert], { unlessDelivered: true })
      expect(idsOf((await store.claim('webhook', 10, T0 + 5)).deliveries)).toEqual([otherAlert.id])
      expect(idsOf((await store.claim('slack', 10, T0 + 5)).deliveries)).toEqual([otherSink.id])
      // Without the option the same delivery is queued: a later change of a confirmed alert is news.
      await store.add([again])
      expect(idsOf((await store.claim('webhook', 10, T0 + 5)).deliveries)).toEqual([otherAlert.id, again.id])
    })

    it('a retried head waits out its back-off and nothing behind it overtakes it', async () => {
      const store = open()
      const [head, next] = [delivery('webhook', 'a1', T0), delivery('webhook', 'a2', T0 + 1)]
      await store.add([head!, next!])
      await store.retry((await store.claim('webhook', 1, T0)).deliveries, T0 + 10_000, 'HTTP 503')
      expect(await store.claim('webhook', 10, T0 + 9_999)).toEqual({ deliveries: [], nextAttemptAtMs: T0 + 10_000 })
      const due = await store.claim('webhook', 10, T0 + 10_000)
      expect(idsOf(due.deliveries)).toEqual([head!.id, next!.id])
      expect(due.deliveries[0]).toMatchObject({ attempts: 1, lastError: 'HTTP 503', nextAttemptAtMs: T0 + 10_000 })
      expect(due.deliveries[1]).toMatchObject({ attempts: 0, lastError: null })
    })

    it('forgets what the sink confirmed, and only that', async () => {
      const store = open()
      const sent = [delivery('webhook', 'a1', T0), delivery('webhook', 'a2', T0)]
      const later = delivery('webhook', 'a3', T0 + 1)
      await store.add([...sent, later])
      await store.delivered((await store.claim('webhook', 2, T0)).deliveries)
      expect(idsOf((await store.claim('webhook', 10, T0 + 1)).deliveries)).toEqual([later.id])
      expect((await store.sizes()).get('webhook')).toEqual({ pending: 1, deadLettered: 0 })
      expect(await store.deadLetters()).toEqual([])
    })

    it('dead-letters what the channel refused, out of the queue, with the attempt and error counted', async () => {
      const store = open()
      const [refused, next] = [delivery('webhook', 'a1', T0), delivery('webhook', 'a2', T0 + 1)]
      await store.add([refused!, next!])
      await store.deadLetter((await store.claim('webhook', 1, T0)).deliveries, 'HTTP 400: unknown field')
      expect(idsOf((await store.claim('webhook', 10, T0 + 1)).deliveries)).toEqual([next!.id])
      expect(await store.deadLetters()).toEqual([{
        id: refused!.id, sink: 'webhook', alertId: 'a1', change: 'opened', createdAt: new Date(T0).toISOString(), attempts: 1, lastError: 'HTTP 400: unknown field', alert: refused!.alert,
      }])
      expect((await store.sizes()).get('webhook')).toEqual({ pending: 1, deadLettered: 1 })
    })

    it('dead-letters a failing sink\'s overdue deliveries: only that sink\'s, only those queued by the cutoff', async () => {
      const store = open()
      const old = [delivery('webhook', 'a1', T0), delivery('webhook', 'a2', T0 + 100)]
      const recent = delivery('webhook', 'a3', T0 + 101)
      const other = delivery('slack', 'a1', T0)
      await store.add([...old, recent, other])
      expect(await store.deadLetterOverdue('webhook', T0 + 100)).toBe(2)
      expect(idsOf(await store.deadLetters('webhook'))).toEqual(idsOf(old))
      expect(await store.deadLetters('slack')).toEqual([])
      expect(idsOf((await store.claim('webhook', 10, T0 + 200)).deliveries)).toEqual([recent.id])
      expect(idsOf((await store.claim('slack', 10, T0 + 200)).deliveries)).toEqual([other.id])
      expect(await store.deadLetterOverdue('webhook', T0 + 100)).toBe(0)
    })

    it('requeues dead letters at the tail of their queue, due now, keeping ids, attempts and order; per sink when asked', async () => {
      const store = open()
      const dead = [delivery('webhook', 'a1', T0), delivery('webhook', 'a2', T0 + 1)]
      const slackDead = delivery('slack', 'a3', T0)
      await store.add([...dead, slackDead])
      await store.deadLetter((await store.claim('webhook', 2, T0)).deliveries, 'HTTP 400')
      await store.deadLetterOverdue('slack', T0)
      const queuedMeanwhile = delivery('webhook', 'a4', T0 + 5)
      await store.add([queuedMeanwhile])
      expect(await store.requeueDeadLetters('webhook', T0 + 50)).toEqual({ requeued: 2, superseded: [] })
      const claim = await store.claim('webhook', 10, T0 + 50)
      expect(idsOf(claim.deliveries)).toEqual([queuedMeanwhile.id, ...idsOf(dead)])
      expect(claim.deliveries[1]).toMatchObject({ attempts: 1, createdAtMs: T0 + 50, nextAttemptAtMs: T0 + 50 })
      expect(idsOf(await store.deadLetters())).toEqual([slackDead.id])
      expect(await store.requeueDeadLetters(undefined, T0 + 60)).toEqual({ requeued: 1, superseded: [] })
      expect(await store.deadLetters()).toEqual([])
    })

    it('drops at requeue a dead letter whose alert has a newer change confirmed by, or queued for, its sink', async () => {
      const store = open()
      const staleConfirmed = delivery('webhook', 'a1', T0)
      const staleQueued = delivery('webhook', 'a2', T0)
      const kept = delivery('webhook', 'a3', T0 + 2)
      const otherSink = delivery('slack', 'a1', T0)
      await store.add([staleConfirmed, staleQueued, kept, otherSink])
      await store.deadLetterOverdue('webhook', T0 + 2)
      await store.deadLetterOverdue('slack', T0)
      const resolvedA1 = delivery('webhook', 'a1', T0 + 3, 'resolved')
      const olderA3 = delivery('webhook', 'a3', T0 + 1, 'resolved') // older than the dead letter: supersedes nothing
      await store.add([resolvedA1, olderA3])
      await store.delivered((await store.claim('webhook', 2, T0 + 3)).deliveries)
      const resolvedA2 = delivery('webhook', 'a2', T0 + 4, 'resolved')
      await store.add([resolvedA2])
      const { requeued, superseded } = await store.requeueDeadLetters('webhook', T0 + 10)
      expect(requeued).toBe(1)
      expect(superseded.map((s) => `${s.id} ${s.sink} ${s.change}`).sort()).toEqual([`${staleConfirmed.id} webhook opened`, `${staleQueued.id} webhook opened`].sort())
      expect(idsOf((await store.claim('webhook', 10, T0 + 10)).deliveries)).toEqual([resolvedA2.id, kept.id])
      // Another sink's confirmation is not this sink's: slack's dead letter of a1 comes back.
      expect(await store.requeueDeadLetters('slack', T0 + 10)).toEqual({ requeued: 1, superseded: [] })
    })

    it('remembers the newest change confirmed per alert, and only a pending or confirmed change supersedes', async () => {
      const store = open()
      const deadA1 = delivery('webhook', 'a1', T0 + 3)
      const deadA2 = [delivery('webhook', 'a2', T0 + 3), delivery('webhook', 'a2', T0 + 4, 'resolved')] // both dead: neither supersedes the other
      await store.add([deadA1, ...deadA2])
      await store.deadLetterOverdue('webhook', T0 + 4)
      await store.add([delivery('webhook', 'a1', T0 + 5, 'resolved')])
      await store.delivered((await store.claim('webhook', 1, T0 + 5)).deliveries)
      await store.add([delivery('webhook', 'a1', T0 + 1, 'acknowledged')]) // confirmed after, but older: the mark stays at T0 + 5
      await store.delivered((await store.claim('webhook', 1, T0 + 5)).deliveries)
      const { requeued, superseded } = await store.requeueDeadLetters('webhook', T0 + 10)
      expect(superseded.map((s) => s.id)).toEqual([deadA1.id])
      expect(requeued).toBe(2)
    })

    it('forgets confirmation marks older than asked, after which they supersede nothing', async () => {
      const store = open()
      const dead = delivery('webhook', 'a1', T0)
      await store.add([dead])
      await store.deadLetterOverdue('webhook', T0)
      await store.add([delivery('webhook', 'a1', T0 + 1, 'resolved')])
      await store.delivered((await store.claim('webhook', 1, T0 + 1)).deliveries, T0 + 2) // the mark just made (T0 + 1) is already too old
      expect(await store.requeueDeadLetters(undefined, T0 + 10)).toEqual({ requeued: 1, superseded: [] })
    })

    it('keeps the queue, the dead letters and the marks across a close and reopen', async () => {
      const first = open()
      const queued = delivery('webhook', 'a1', T0)
      const dead = delivery('webhook', 'a2', T0 - 1)
      const stale = delivery('webhook', 'a3', T0)
      await first.add([dead, stale])
      await first.deadLetterOverdue('webhook', T0)
      await first.add([delivery('webhook', 'a3', T0 + 1, 'resolved')])
      await first.delivered((await first.claim('webhook', 1, T0 + 1)).deliveries)
      await first.add([queued])
      await first.retry((await first.claim('webhook', 1, T0 + 2)).deliveries, T0 + 1_000, 'timeout')
      await first.close()
      const reopened = open()
      expect((await reopened.claim('webhook', 10, T0 + 1_000)).deliveries).toEqual([{ ...queued, attempts: 1, nextAttemptAtMs: T0 + 1_000, lastError: 'timeout' }])
      expect(idsOf(await reopened.deadLetters())).toEqual([dead.id, stale.id])
      expect((await reopened.requeueDeadLetters(undefined, T0 + 2_000)).superseded.map((s) => s.id)).toEqual([stale.id])
    })
  })
}
