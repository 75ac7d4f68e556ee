import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { AlertBook, type Raisable } from '../../detection/alert-book.ts'

const finding = (i: number, fields: Partial<Raisable> = {}): Raisable =>
  ({ policy: 'firmware-outdated', deviceId: `flood-${i}`, severity: i % 2 === 0 ? 'low' : 'high', summary: 's', evidence: {}, site: i % 3 === 0 ? 'north' : 'south', kind: 'flood', ...fields })

afterEach(() => { vi.restoreAllMocks() })

describe('AlertBook paging and expiry in SQL (defect 3)', () => {
  it('pages 100k alerts newest first, parsing only the page', async () => {
    const clock = { ms: Date.parse('2026-11-01T00:00:00Z'), now: () => clock.ms }
    const book = new AlertBook({ clock })
    for (let i = 0; i < 100_000; i++) {
      if (i % 3 === 0) clock.ms += 1 // some alerts share a millisecond: the cursor breaks ties by id
      await book.raise(finding(i))
    }
    const parse = vi.spyOn(JSON, 'parse')
    const first = (await book.page({ severity: 'high', site: 'south' }, 50))
    expect(parse.mock.calls.length).toBeLessThanOrEqual(50)
    expect(first.items).toHaveLength(50)
    expect(first.total).toBe(33_333)
    expect(first.items.every((a) => a.severity === 'high' && a.site === 'south')).toBe(true)
    expect(first.items[0]!.deviceId).toBe('flood-99997')
    parse.mockClear()
    const second = (await book.page({ severity: 'high', site: 'south' }, 50, first.next!))
    expect(parse.mock.calls.length).toBeLessThanOrEqual(50)
    expect(second.items[0]!.detectedAt <= first.items.at(-1)!.detectedAt).toBe(true)
    expect(new Set([...first.items, ...second.items].map((a) => a.id)).size).toBe(100)
    await book.close()
  })

  it('walks every alert exactly once with the cursor, even as new ones open', async () => {
    const clock = { ms: 0, now: () => clock.ms }
    const book = new AlertBook({ clock })
    for (let i = 0; i < 1_000; i++) { if (i % 7 === 0) clock.ms += 1_000; (await book.raise(finding(i))) }
    const seen: string[] = []
    let next: string | null | undefined
    do {
      const page = (await book.page({}, 64, next ?? undefined))
      seen.push(...page.items.map((a) => a.deviceId))
      next = page.next
      clock.ms += 1
      await book.raise(finding(10_000 + seen.length)) // newer than every page: never shifts the walk
    } while (next)
    expect(seen).toHaveLength(1_000)
    expect(new Set(seen).size).toBe(1_000)
    expect(() => book.page({}, 10, 'not-a-cursor')).toThrow(/cursor: not a cursor/)
  })

  it('deletes resolved alerts past the retention, in SQL; open ones stay however old', async () => {
    const clock = { ms: Date.parse('2026-01-01T00:00:00Z'), now: () => clock.ms }
    const book = new AlertBook({ clock, resolvedRetentionMs: 86_400_000 })
    for (let i = 0; i < 10; i++) await book.raise(finding(i))
    for (let i = 0; i < 6; i++) await book.clear({ policy: 'firmware-outdated', deviceId: `flood-${i}`, reason: 'updated' })
    clock.ms += 2 * 86_400_000
    await book.raise(finding(100)) // resolved 2 days ago: six to delete; four open; one new
    expect(book.expire(true)).toBe(6)
    expect((await book.page({}, 100)).total).toBe(5)
    expect((await book.list({ status: 'resolved' }))).toEqual([])
  })

  it('reads a book written before the listed columns existed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'placeguard-alert-book-'))
    try {
      const path = join(dir, 'alerts.db')
      const old = new DatabaseSync(path)
      old.exec('CREATE TABLE alerts (id TEXT PRIMARY KEY, policy TEXT NOT NULL, device_id TEXT NOT NULL, status TEXT NOT NULL, detected_at TEXT NOT NULL, body TEXT NOT NULL)')
      const body = { id: '00000000-0000-4000-8000-000000000001', policy: 'replay', severity: 'high', deviceId: 'f-1', site: 'north', kind: 'flood', summary: 's', detectedAt: '2026-01-01T00:00:00.000Z', status: 'open', evidence: {} }
      old.prepare('INSERT INTO alerts VALUES (?, ?, ?, ?, ?, ?)').run(body.id, 'replay', 'f-1', 'open', body.detectedAt, JSON.stringify(body))
      old.close()
      const book = new AlertBook({ path })
      expect((await book.page({ severity: 'high', site: 'north' }, 10)).items.map((a) => a.id)).toEqual([body.id])
      await book.close()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
