/**
 * SqliteAuditStore (audit/sqlite-audit-store.ts): the contract, with a
 * place whose guards someone holding the file can drop (as they would:
 * DROP TRIGGER, then their statement); and what only SQLite shows — the
 * chain is computed here, so its hashes must be the ones PostgreSQL's
 * audit_hash() would give (test/db/pg-audit-store.test.ts checks the
 * other side), and it holds across a reopen.
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { describe, expect, it } from 'vitest'
import { canonicalJson, chainHash, GENESIS_HASH, SqliteAuditStore } from '../../audit/index.ts'
import { auditStoreContract, type AuditPlace } from './audit-store.contract.ts'

function sqliteAuditPlace (): AuditPlace & { path: string } {
  const dir = mkdtempSync(join(tmpdir(), 'placeguard-audit-'))
  const path = join(dir, 'audit.db')
  const raw = (work: (db: DatabaseSync) => void): void => {
    const db = new DatabaseSync(path)
    try {
      work(db)
    } finally {
      db.close()
    }
  }
  return {
    path,
    open: () => new SqliteAuditStore({ path }),
    plainSql: async (statement) => raw((db) => db.exec(statement)),
    pastTheGuards: async (statement) => {
      raw((db) => {
        const triggers = db.prepare('SELECT name FROM sqlite_master WHERE type = \'trigger\'').all() as Array<{ name: string }>
        for (const { name } of triggers) db.exec(`DROP TRIGGER "${name}"`)
        db.function('audit_hash', (seq, prevHash, at, actor, action, subject, detail) => chainHash({
          seq: Number(seq), prevHash: String(prevHash), atMicros: Date.parse(String(at)) * 1000, actor: String(actor), action: String(action), subject: subject === null ? null : String(subject), detail: JSON.parse(String(detail)),
        }))
        db.exec(statement)
      })
      // Opening the trail puts its triggers back (CREATE TRIGGER IF NOT EXISTS); what was done stays done.
      new SqliteAuditStore({ path }).close()
    },
    dispose: () => rmSync(dir, { recursive: true, force: true }),
  }
}

auditStoreContract('SQLite', sqliteAuditPlace)

describe('SqliteAuditStore', () => {
  it('hashes an entry over [seq, prev_hash, microseconds, actor, action, subject, detail] as jsonb writes it, on the injected clock', () => {
    const store = new SqliteAuditStore({ clock: { now: () => Date.UTC(2026, 11, 1, 9, 30, 0, 123) } })
    const entry = store.append({ actor: 'operator:3f2a1b0c', action: 'alert.comment', subject: 'alr-1', detail: { text: 'tab\there "q"', bb: 2, a: [1, null] }, from: '127.0.0.1' })
    expect(entry.at).toBe('2026-12-01T09:30:00.123Z')
    // What PostgreSQL's jsonb_build_array(…)::text gives for these fields: keys by length, then bytes.
    const text = `[1, "${GENESIS_HASH}", 1796117400123000, "operator:3f2a1b0c", "alert.comment", "alr-1", {"a": [1, null], "bb": 2, "from": "127.0.0.1", "text": "tab\\there \\"q\\""}]`
    expect(canonicalJson([1, GENESIS_HASH, 1796117400123000, 'operator:3f2a1b0c', 'alert.comment', 'alr-1', { text: 'tab\there "q"', bb: 2, a: [1, null], from: '127.0.0.1' }])).toBe(text)
    expect(entry.hash).toBe(chainHash({ seq: 1, prevHash: GENESIS_HASH, atMicros: 1796117400123000, actor: 'operator:3f2a1b0c', action: 'alert.comment', subject: 'alr-1', detail: { a: [1, null], bb: 2, from: '127.0.0.1', text: 'tab\there "q"' } }))
    store.close()
  })

  it('keeps the chain across a reopen of its file, and goes on from its head', () => {
    const dir = mkdtempSync(join(tmpdir(), 'placeguard-audit-'))
    try {
      const path = join(dir, 'audit.db')
      const first = new SqliteAuditStore({ path })
      const one = first.append({ actor: 'operator:1', action: 'policy.reload' })
      first.close()
      const again = new SqliteAuditStore({ path })
      expect(again.append({ actor: 'operator:1', action: 'policy.reload' })).toMatchObject({ seq: 2, prevHash: one.hash })
      expect(again.verify()).toEqual({ intact: true, entries: 2 })
      again.close()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('makes one chain of two processes appending to one file at once', async () => {
    const place = sqliteAuditPlace()
    const store = place.open() as SqliteAuditStore
    try {
      const writers = ['operator:aaaaaaaa', 'operator:bbbbbbbb'].map((actor) => {
        const child = spawn(process.execPath, [join(import.meta.dirname, '..', 'helpers', 'audit-append-process.ts'), place.path, actor, '300'], { stdio: ['pipe', 'pipe', 'pipe'] })
        let stderr = ''
        child.stderr.on('data', (chunk) => { stderr += chunk })
        const ready = new Promise<void>((resolve) => child.stdout.once('data', () => resolve()))
        const exited = new Promise<void>((resolve, reject) => {
          child.once('error', reject)
          child.once('exit', (code) => code === 0 ? resolve() : reject(new Error(`writer ${actor} exited with ${code}: ${stderr}`)))
        })
        return { child, ready, exited }
      })
      await Promise.all(writers.map((w) => w.ready))
      for (const { child } of writers) child.stdin.end('go\n')
      await Promise.all(writers.map((w) => w.exited))
      expect(store.verify()).toEqual({ intact: true, entries: 600 })
      const actors = store.page({ order: 'oldest' }, 600).items.map((e) => e.actor)
      expect(actors.filter((a) => a === 'operator:aaaaaaaa')).toHaveLength(300)
    } finally {
      store.close()
      await place.dispose()
    }
  })

  it('refuses an entry inserted by hand anywhere but at the head, and a head moved or removed by hand', async () => {
    const place = sqliteAuditPlace()
    const store = place.open() as SqliteAuditStore
    try {
      const one = store.append({ actor: 'operator:1', action: 'policy.reload' })
      const insert = (seq: number, prevHash: string) => place.plainSql(`INSERT INTO audit_events (seq, at, actor, action, subject, detail, prev_hash, hash) VALUES (${seq}, '2026-12-01T00:00:00.000Z', 'operator:0', 'policy.reload', NULL, '{}', '${prevHash}', '${'cd'.repeat(32)}')`)
      await expect(insert(5, one.hash)).rejects.toThrow(/must follow the head/)
      await expect(insert(2, GENESIS_HASH)).rejects.toThrow(/must follow the head/)
      await expect(place.plainSql(`UPDATE audit_head SET hash = '${GENESIS_HASH}'`)).rejects.toThrow(/head only follows a new entry/)
      await expect(place.plainSql('DELETE FROM audit_head')).rejects.toThrow(/append-only: DELETE refused/)
      expect(store.verify()).toEqual({ intact: true, entries: 1 })
    } finally {
      store.close()
      await place.dispose()
    }
  })
})
