/**
 * What every AuditStore must do (audit/audit-store.ts), whatever keeps the
 * entries: run by sqlite-audit-store.test.ts for SQLite and by
 * test/db/pg-audit-store.test.ts for PostgreSQL. Every store call is
 * awaited, so a synchronous and an asynchronous store pass the same
 * assertions.
 *
 * Besides opening stores, a place lets the test reach the database as two
 * kinds of people: any client of it (`plainSql`: its UPDATE and DELETE
 * must be refused) and someone past the guards (`pastTheGuards`: SQLite,
 * someone with the file who drops the triggers; PostgreSQL, a superuser
 * who disables them). What the second changes, `verify` must name.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { type AsyncAuditStore, type AuditStore, GENESIS_HASH } from '../../audit/index.ts'
import type { StorePlace } from '../helpers/store-place.ts'

export interface AuditPlace extends StorePlace<AuditStore | AsyncAuditStore> {
  /** A statement as any client of the database sends it. */
  plainSql: (statement: string) => Promise<void>
  /** A statement with the trail's triggers out of the way, put back afterwards; it may call audit_hash() as PostgreSQL's. */
  pastTheGuards: (statement: string) => Promise<void>
}

/** A 64-hex string no entry has: what a forger writes where a hash goes. */
const FORGED = 'ab'.repeat(32)

export function auditStoreContract (name: string, newPlace: () => AuditPlace): void {
  describe(`AuditStore contract: ${name}`, () => {
    let place: AuditPlace | undefined
    let opened: Array<AuditStore | AsyncAuditStore> = []
    afterEach(async () => {
      for (const store of opened.reverse()) await store.close()
      opened = []
      await place?.dispose()
      place = undefined
    })
    const open = (): AuditStore | AsyncAuditStore => {
      place ??= newPlace()
      const store = place.open()
      opened.push(store)
      return store
    }
    /** A trail of `n` entries, alternating subjects. */
    const trail = async (n: number) => {
      const store = open()
      for (let i = 1; i <= n; i++) {
        await store.append({ actor: 'operator:3f2a1b0c', action: 'alert.acknowledge', subject: `alr-${i % 2}`, detail: { n: i }, from: '127.0.0.1' })
      }
      return store
    }

    it('answers an appended entry as stored: numbered from 1, linked to the one before, found again in pages', async () => {
      const store = open()
      expect(await store.verify()).toEqual({ intact: true, entries: 0 })
      const first = await store.append({ actor: 'operator:3f2a1b0c', action: 'quarantine.lift', subject: 'flood-0001', detail: { reason: 'replaced', ok: true, tags: ['a', 'é'] }, from: '10.0.0.7' })
      const second = await store.append({ actor: 'operator:77aa0000', action: 'policy.reload' })
      expect(first).toMatchObject({ seq: 1, actor: 'operator:3f2a1b0c', action: 'quarantine.lift', subject: 'flood-0001', from: '10.0.0.7', detail: { reason: 'replaced', ok: true, tags: ['a', 'é'] }, prevHash: GENESIS_HASH })
      expect(first.hash).toMatch(/^[0-9a-f]{64}$/)
      expect(Number.isNaN(Date.parse(first.at))).toBe(false)
      expect(second).toMatchObject({ seq: 2, subject: null, from: null, detail: {}, prevHash: first.hash })
      expect((await store.page({ order: 'oldest' }, 10)).items).toEqual([first, second])
      expect(await store.verify()).toEqual({ intact: true, entries: 2 })
    })

    it('pages newest or oldest first by seq, with a keyset that entries appended meanwhile do not shift, and by subject', async () => {
      const store = await trail(5)
      const newest = await store.page({}, 2)
      expect(newest.items.map((e) => e.seq)).toEqual([5, 4])
      expect(newest).toMatchObject({ total: 5, last: 4 })
      await store.append({ actor: 'operator:3f2a1b0c', action: 'delivery.requeue', subject: 'webhook' })
      const next = await store.page({}, 2, newest.last!)
      expect(next.items.map((e) => e.seq)).toEqual([3, 2])
      expect((await store.page({}, 2, next.last!))).toMatchObject({ items: [{ seq: 1 }], last: null, total: 6 })
      const oldest = await store.page({ order: 'oldest' }, 4)
      expect(oldest.items.map((e) => e.seq)).toEqual([1, 2, 3, 4])
      expect((await store.page({ order: 'oldest' }, 4, oldest.last!)).items.map((e) => e.seq)).toEqual([5, 6])
      const one = await store.page({ subject: 'alr-1' }, 10)
      expect(one.items.map((e) => e.seq)).toEqual([5, 3, 1])
      expect(one.total).toBe(3)
      expect((await store.page({ subject: 'alr-1', order: 'oldest' }, 1, 1)).items.map((e) => e.seq)).toEqual([3])
    })

    it('records an event given twice under one key once, from one writer or two at once; the chain stays whole', async () => {
      const store = open()
      const command = { actor: 'supplier:acme-pumps', action: 'supplier.command', subject: 'flood-1', detail: { commandId: 'c-1' }, from: '10.0.0.9:50122', key: 'supplier-command:c-1' }
      const first = await store.append(command)
      expect(await store.append(command)).toEqual(first)
      const other = open()
      const [a, b] = await Promise.all([store.append({ ...command, key: 'supplier-command:c-2' }), other.append({ ...command, key: 'supplier-command:c-2' })])
      expect(a).toEqual(b)
      await store.append({ actor: 'operator:3f2a1b0c', action: 'policy.reload' })
      expect((await store.page({ order: 'oldest' }, 10)).items.map((e) => e.seq)).toEqual([1, 2, 3])
      expect(await store.verify()).toEqual({ intact: true, entries: 3 })
    })

    it('refuses an event it could not record faithfully, naming the field', async () => {
      const store = open()
      const refused = (event: Parameters<AuditStore['append']>[0]) => expect(Promise.resolve().then(() => store.append(event))).rejects.toThrow()
      await refused({ actor: '', action: 'alert.resolve' })
      await expect(Promise.resolve().then(() => store.append({ actor: 'operator:1', action: 'alert.resolve', detail: { from: 'elsewhere' } }))).rejects.toThrow(/detail: the key "from"/)
      expect(await store.verify()).toEqual({ intact: true, entries: 0 })
    })

    it('makes one gapless chain of two writers appending at once', async () => {
      const [a, b] = [open(), open()]
      const appended = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 ? a : b).append({ actor: `operator:${i % 2 ? 'aaaaaaaa' : 'bbbbbbbb'}`, action: 'alert.comment', subject: `alr-${i}`, detail: { i } })))
      expect(appended.map((e) => e.seq).sort((x, y) => x - y)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1))
      expect(await a.verify()).toEqual({ intact: true, entries: 40 })
      const all = (await b.page({ order: 'oldest' }, 100)).items
      all.slice(1).forEach((entry, i) => expect(entry.prevHash).toBe(all[i]!.hash))
    })

    it('refuses UPDATE and DELETE of an entry from any client of the database', async () => {
      await trail(3)
      await expect(place!.plainSql('UPDATE audit_events SET actor = \'operator:00000000\' WHERE seq = 2')).rejects.toThrow(/append-only: UPDATE refused/)
      await expect(place!.plainSql('DELETE FROM audit_events WHERE seq = 2')).rejects.toThrow(/append-only: DELETE refused/)
      await expect(place!.plainSql('DELETE FROM audit_events')).rejects.toThrow(/append-only: DELETE refused/)
      expect(await open().verify()).toEqual({ intact: true, entries: 3 })
    })

    it.each([
      ['an entry edited in place', 'UPDATE audit_events SET actor = \'operator:00000000\' WHERE seq = 3', 3, 'edited', 5, /entry 3 does not match its hash/],
      ['an entry\'s hash rewritten', `UPDATE audit_events SET hash = '${FORGED}' WHERE seq = 2`, 2, 'edited', 5, /entry 2 does not match its hash/],
      // The forger knows the algorithm: audit_hash() (SQLite: the same function, registered on their connection).
      ['an entry edited with its hash recomputed', 'UPDATE audit_events SET actor = \'operator:00000000\', hash = audit_hash(seq, prev_hash, at, \'operator:00000000\', action, subject, detail) WHERE seq = 3', 4, 'edited', 5, /entry 4 does not follow entry 3/],
      ['an entry deleted from the middle', 'DELETE FROM audit_events WHERE seq = 3', 3, 'deleted', 4, /entry 3 is missing/],
      ['the last entry deleted', 'DELETE FROM audit_events WHERE seq = 5', 5, 'deleted', 4, /entry 5 is missing/],
      ['an entry inserted past the head', `INSERT INTO audit_events (seq, at, actor, action, subject, detail, prev_hash, hash) SELECT 6, at, actor, 'alert.resolve', subject, detail, hash, '${FORGED}' FROM audit_events WHERE seq = 5`, 6, 'inserted', 6, /entries from seq 6 to 6 lie past the chain's head \(seq 5\)/],
      ['the head moved', `UPDATE audit_head SET hash = '${FORGED}'`, 6, 'head-moved', 5, /the head \(seq 5\) does not match the last entry/],
    ] as const)('names the seq where the chain breaks after %s past the guards', async (_what, statement, brokenAt, reason, entries, message) => {
      const store = await trail(5)
      await place!.pastTheGuards(statement)
      expect(await store.verify()).toMatchObject({ intact: false, entries, brokenAt, reason, message: expect.stringMatching(message) })
    })
  })
}
