/**
 * What every AlertStore must do (detection/alert-store.ts), whatever keeps
 * the rows: run by sqlite-alert-store.test.ts for SQLite, and by
 * test/db/pg-alert-store.test.ts for PostgreSQL, against a place of its
 * own. Every store call is awaited, so a synchronous store and an
 * asynchronous one (AsyncAlertStore) pass the same assertions.
 */
import { describe, expect, it } from 'vitest'
import type { AlertStore, AsyncAlertStore } from '../../detection/alert-store.ts'
import type { Alert, AlertPolicy } from '../../shared/alert-contract.ts'
import { type StorePlace, storesPerTest } from '../helpers/store-place.ts'

let ids = 0
/** Ids in increasing order, in the UUID form the book gives. */
const nextId = (): string => `00000000-0000-4000-8000-${String(++ids).padStart(12, '0')}`

function alert (fields: Partial<Alert> & { deviceId: string }): Alert {
  const detectedAt = fields.detectedAt ?? '2026-03-01T10:00:00.000Z'
  return {
    id: nextId(), policy: 'acl-violation', severity: 'high', site: 'riverside', kind: 'flood', summary: 'first', detectedAt, status: 'open',
    evidence: { topic: 'places/#' }, stride: 'Elevation of privilege', attack: null, lastSeenAt: detectedAt, occurrences: 1,
    acknowledgedBy: null, resolvedAt: null, resolution: null, response: null, comments: [], ...fields,
  }
}

const seen = (lastSeenAt: string, summary = 'again') => ({ severity: 'critical' as const, summary, evidence: { topic: 'places/+/x', count: 2 }, lastSeenAt })
const resolve = (at: string) => (live: Alert): Alert => ({ ...live, status: 'resolved', resolvedAt: at, resolution: 'by test' })

export function alertStoreContract (name: string, newPlace: () => StorePlace<AlertStore | AsyncAlertStore>): void {
  describe(`AlertStore contract: ${name}`, () => {
    const { open } = storesPerTest(newPlace)

    it('opens the first alert of a (policy, device) and refreshes it on a repeat: same id, occurrences + 1, the rest kept', async () => {
      const store = open()
      const first = alert({ deviceId: 'flood-1' })
      expect(await store.raise(first, seen(first.detectedAt))).toEqual({ change: 'opened', alert: first })
      expect(await store.get(first.id)).toEqual(first)
      const repeat = await store.raise(alert({ deviceId: 'flood-1', detectedAt: '2026-03-01T10:05:00.000Z' }), seen('2026-03-01T10:05:00.000Z'))
      const expected = { ...first, severity: 'critical', summary: 'again', evidence: { topic: 'places/+/x', count: 2 }, lastSeenAt: '2026-03-01T10:05:00.000Z', occurrences: 2 }
      expect(repeat).toEqual({ change: 'updated', alert: expected })
      expect(await store.get(first.id)).toEqual(expected)
      expect((await store.page({}, 10)).total).toBe(1)
    })

    it('keys by policy and device both: another device or another policy opens its own alert', async () => {
      const store = open()
      const a = await store.raise(alert({ deviceId: 'flood-1' }), seen('2026-03-01T10:00:00.000Z'))
      const b = await store.raise(alert({ deviceId: 'flood-2' }), seen('2026-03-01T10:00:00.000Z'))
      const c = await store.raise(alert({ deviceId: 'flood-1', policy: 'replay' }), seen('2026-03-01T10:00:00.000Z'))
      expect([a.change, b.change, c.change]).toEqual(['opened', 'opened', 'opened'])
      expect(new Set([a.alert.id, b.alert.id, c.alert.id]).size).toBe(3)
      expect((await store.page({}, 10)).total).toBe(3)
    })

    it('opens a new alert when the condition returns after its alert was resolved; the resolved one stays as it was', async () => {
      const store = open()
      const first = (await store.raise(alert({ deviceId: 'flood-1' }), seen('2026-03-01T10:00:00.000Z'))).alert
      const resolved = await store.updateLive('acl-violation', 'flood-1', resolve('2026-03-01T11:00:00.000Z'))
      expect(resolved).toMatchObject({ id: first.id, status: 'resolved' })
      const again = await store.raise(alert({ deviceId: 'flood-1', detectedAt: '2026-03-01T12:00:00.000Z' }), seen('2026-03-01T12:00:00.000Z'))
      expect(again.change).toBe('opened')
      expect(again.alert.id).not.toBe(first.id)
      expect(await store.get(first.id)).toEqual(resolved)
      expect((await store.page({ status: 'open' }, 10)).items.map((a) => a.id)).toEqual([again.alert.id])
    })

    it('refuses a change that would make a second live alert of a (policy, device), and stores nothing of it', async () => {
      const store = open()
      const old = (await store.raise(alert({ deviceId: 'flood-1' }), seen('2026-03-01T10:00:00.000Z'))).alert
      await store.update(old.id, resolve('2026-03-01T11:00:00.000Z'))
      const live = (await store.raise(alert({ deviceId: 'flood-1', detectedAt: '2026-03-01T12:00:00.000Z' }), seen('2026-03-01T12:00:00.000Z'))).alert
      await expect(async () => { await store.update(old.id, (a) => ({ ...a, status: 'open', resolvedAt: null })) }).rejects.toThrow()
      expect((await store.get(old.id))?.status).toBe('resolved')
      expect((await store.page({ policy: 'acl-violation', deviceId: 'flood-1', status: 'open' }, 10)).items.map((a) => a.id)).toEqual([live.id])
    })

    it('update gives the change the stored alert, stores what it answers, and leaves the alert when it declines', async () => {
      const store = open()
      const { id } = (await store.raise(alert({ deviceId: 'flood-1' }), seen('2026-03-01T10:00:00.000Z'))).alert
      const note = (text: string) => (a: Alert): Alert => ({ ...a, comments: [...a.comments, { by: 'alice', at: '2026-03-01T10:01:00.000Z', text }] })
      await store.update(id, note('one'))
      expect((await store.update(id, note('two')))?.comments.map((c) => c.text)).toEqual(['one', 'two'])
      const before = await store.get(id)
      expect(await store.update(id, () => undefined)).toBeUndefined()
      expect(await store.get(id)).toEqual(before)
      let called = false
      expect(await store.update('00000000-0000-4000-8000-ffffffffffff', (a) => { called = true; return a })).toBeUndefined()
      expect(called).toBe(false)
    })

    it('update refuses to change what identifies an alert', async () => {
      const store = open()
      const stored = (await store.raise(alert({ deviceId: 'flood-1' }), seen('2026-03-01T10:00:00.000Z'))).alert
      await expect(async () => { await store.update(stored.id, (a) => ({ ...a, deviceId: 'flood-2' })) }).rejects.toThrow()
      await expect(async () => { await store.update(stored.id, (a) => ({ ...a, policy: 'replay' as AlertPolicy })) }).rejects.toThrow()
      await expect(async () => { await store.update(stored.id, (a) => ({ ...a, id: nextId() })) }).rejects.toThrow()
      await expect(async () => { await store.update(stored.id, (a) => ({ ...a, detectedAt: '2026-03-02T00:00:00.000Z' })) }).rejects.toThrow()
      expect(await store.get(stored.id)).toEqual(stored)
    })

    it('updateLive reaches only the live alert of its (policy, device)', async () => {
      const store = open()
      expect(await store.updateLive('acl-violation', 'flood-1', (a) => a)).toBeUndefined()
      const { id } = (await store.raise(alert({ deviceId: 'flood-1' }), seen('2026-03-01T10:00:00.000Z'))).alert
      expect(await store.updateLive('replay', 'flood-1', (a) => a)).toBeUndefined()
      expect(await store.updateLive('acl-violation', 'flood-1', (a) => ({ ...a, status: 'acknowledged', acknowledgedBy: 'bob' }))).toMatchObject({ id, status: 'acknowledged' })
      // Acknowledged is still live: a repeat refreshes it.
      expect(await store.raise(alert({ deviceId: 'flood-1' }), seen('2026-03-01T10:09:00.000Z'))).toMatchObject({ change: 'updated', alert: { id, status: 'acknowledged', occurrences: 2 } })
      await store.updateLive('acl-violation', 'flood-1', resolve('2026-03-01T11:00:00.000Z'))
      expect(await store.updateLive('acl-violation', 'flood-1', (a) => a)).toBeUndefined()
    })

    it('pages newest first (ties by id), filters on every field, counts all matches, and follows changes in its filters', async () => {
      const store = open()
      const at = (minute: number) => `2026-03-01T10:${String(minute).padStart(2, '0')}:00.000Z`
      const stored: Alert[] = []
      for (let i = 0; i < 12; i++) {
        const opened = alert({ deviceId: `flood-${i}`, detectedAt: at(Math.floor(i / 2)), severity: i % 2 === 0 ? 'low' : 'high', site: i % 3 === 0 ? 'north' : 'south', policy: i < 6 ? 'acl-violation' : 'replay' })
        stored.push((await store.raise(opened, seen(opened.detectedAt))).alert)
      }
      const newestFirst = [...stored].sort((a, b) => a.detectedAt < b.detectedAt ? 1 : a.detectedAt > b.detectedAt ? -1 : a.id < b.id ? 1 : -1)
      const all = await store.page({}, 100)
      expect(all.items.map((a) => a.deviceId)).toEqual(newestFirst.map((a) => a.deviceId))
      expect(all).toMatchObject({ total: 12, last: null })
      expect((await store.page({ severity: 'high' }, 100)).items.map((a) => a.deviceId)).toEqual(newestFirst.filter((a) => a.severity === 'high').map((a) => a.deviceId))
      expect((await store.page({ site: 'north' }, 100)).total).toBe(4)
      expect((await store.page({ policy: 'replay', severity: 'low' }, 100)).total).toBe(3)
      expect((await store.page({ deviceId: 'flood-7' }, 100)).items.map((a) => a.id)).toEqual([stored[7]!.id])
      await store.update(stored[7]!.id, (a) => ({ ...a, status: 'acknowledged', acknowledgedBy: 'bob' }))
      await store.update(stored[8]!.id, resolve(at(30)))
      expect((await store.page({ status: 'acknowledged' }, 100)).items.map((a) => a.id)).toEqual([stored[7]!.id])
      expect((await store.page({ status: 'resolved' }, 100)).items.map((a) => a.id)).toEqual([stored[8]!.id])
      expect((await store.page({ status: 'open' }, 100)).total).toBe(10)
      // A repeat that changes the severity moves the alert between severity filters.
      await store.raise(alert({ deviceId: 'flood-0', detectedAt: at(40) }), seen(at(40)))
      expect((await store.page({ severity: 'critical' }, 100)).items.map((a) => a.id)).toEqual([stored[0]!.id])
    })

    it('walks every alert once by keyset, even as newer ones are stored between pages', async () => {
      const store = open()
      for (let i = 0; i < 25; i++) {
        const opened = alert({ deviceId: `flood-${i}`, detectedAt: `2026-03-01T10:00:0${i % 3}.000Z` }) // many share a time: ties go by id
        await store.raise(opened, seen(opened.detectedAt))
      }
      const walked: string[] = []
      let after: { detectedAt: string, id: string } | undefined
      for (let pages = 0; pages < 10; pages++) {
        const page = await store.page({}, 4, after)
        expect(page.total).toBe(25 + pages)
        walked.push(...page.items.map((a) => a.deviceId))
        const newer = alert({ deviceId: `late-${pages}`, detectedAt: '2026-03-02T00:00:00.000Z' })
        await store.raise(newer, seen(newer.detectedAt))
        if (!page.last) break
        expect(page.last).toEqual({ detectedAt: page.items.at(-1)!.detectedAt, id: page.items.at(-1)!.id })
        after = page.last
      }
      expect(walked).toHaveLength(25)
      expect(new Set(walked).size).toBe(25)
      expect(walked.every((d) => d.startsWith('flood-'))).toBe(true)
    })

    it('deletes only alerts resolved before the cutoff; unresolved ones stay however old', async () => {
      const store = open()
      const stored: Alert[] = []
      for (let i = 0; i < 5; i++) stored.push((await store.raise(alert({ deviceId: `flood-${i}`, detectedAt: '2020-01-01T00:00:00.000Z' }), seen('2020-01-01T00:00:00.000Z'))).alert)
      await store.update(stored[0]!.id, resolve('2026-01-01T00:00:00.000Z'))
      await store.update(stored[1]!.id, resolve('2026-01-03T00:00:00.000Z'))
      await store.update(stored[2]!.id, (a) => ({ ...a, status: 'acknowledged', acknowledgedBy: 'bob' }))
      expect(await store.deleteResolvedBefore('2026-01-02T00:00:00.000Z')).toBe(1)
      expect(await store.get(stored[0]!.id)).toBeUndefined()
      expect((await store.page({}, 10)).items.map((a) => a.deviceId).sort()).toEqual(['flood-1', 'flood-2', 'flood-3', 'flood-4'])
      expect(await store.deleteResolvedBefore('2026-01-02T00:00:00.000Z')).toBe(0)
    })

    it('keeps every alert and its live key across a close and reopen', async () => {
      const first = open()
      const opened = (await first.raise(alert({ deviceId: 'flood-1' }), seen('2026-03-01T10:00:00.000Z'))).alert
      const commented = await first.update(opened.id, (a) => ({ ...a, comments: [{ by: 'alice', at: '2026-03-01T10:01:00.000Z', text: 'seen' }] }))
      await first.close()
      const reopened = open()
      expect(await reopened.get(opened.id)).toEqual(commented)
      expect(await reopened.raise(alert({ deviceId: 'flood-1' }), seen('2026-03-01T10:02:00.000Z'))).toMatchObject({ change: 'updated', alert: { id: opened.id, occurrences: 2 } })
    })

    it('two stores open on one place (two processes) share the live key: one alert, every occurrence counted', async () => {
      const a = open()
      const b = open()
      const ids = new Set<string>()
      for (let i = 0; i < 6; i++) {
        const store = i % 2 === 0 ? a : b
        ids.add((await store.raise(alert({ deviceId: 'flood-1' }), seen(`2026-03-01T10:00:0${i}.000Z`))).alert.id)
      }
      expect(ids.size).toBe(1)
      expect((await a.get([...ids][0]!))?.occurrences).toBe(6)
      const resolved = await b.updateLive('acl-violation', 'flood-1', resolve('2026-03-01T11:00:00.000Z'))
      expect(await a.updateLive('acl-violation', 'flood-1', (x) => x)).toBeUndefined()
      expect((await a.get(resolved!.id))?.status).toBe('resolved')
    })
  })
}
