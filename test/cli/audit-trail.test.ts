/**
 * `placeguard audit-trail verify` as a user runs it: the real command on
 * a data directory's trail and on a PostgreSQL one, exit 0 while the
 * chain is whole and 1 with where and why once someone past the triggers
 * changed it — without the check itself writing to the trail.
 */
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { afterAll, describe, expect, it } from 'vitest'
import { PgAuditStore, SqliteAuditStore } from '../../audit/index.ts'
import { createDatabasePool, migrate } from '../../db/index.ts'
import { createLogger } from '../../shared/logger.ts'
import { startPostgres } from '../helpers/postgres.ts'

const dataDir = mkdtempSync(join(tmpdir(), 'placeguard-cli-audit-'))
afterAll(() => rmSync(dataDir, { recursive: true, force: true }))

/** The real `placeguard` command (asynchronously: the PostgreSQL server runs in this process's children). */
function placeguard (...args: string[]): Promise<{ status: number | null, stdout: string, stderr: string }> {
  const child = spawn(process.execPath, ['bin/placeguard.js', '--data-dir', dataDir, ...args], { env: { ...process.env, PLACEGUARD_DATABASE_URL: '' } })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk) => { stdout += chunk })
  child.stderr.on('data', (chunk) => { stderr += chunk })
  return new Promise((resolve) => child.once('close', (status) => resolve({ status, stdout, stderr })))
}

describe('placeguard audit-trail verify', () => {
  it('checks <data-dir>/audit.db: whole, then broken where someone with the file changed it, and leaves the file as it found it', async () => {
    const path = join(dataDir, 'audit.db')
    expect(await placeguard('audit-trail', 'verify')).toMatchObject({ status: 0, stdout: `intact: 0 entries in ${path}\n` })
    expect(existsSync(path)).toBe(false)
    const store = new SqliteAuditStore({ path })
    for (const subject of ['flood-1', 'flood-2', 'flood-3']) store.append({ actor: 'operator:3f2a1b0c', action: 'quarantine.lift', subject })
    store.close()
    expect(await placeguard('audit-trail', 'verify')).toMatchObject({ status: 0, stdout: `intact: 3 entries in ${path}\n` })

    const db = new DatabaseSync(path)
    db.exec('DROP TRIGGER audit_append_only_update; UPDATE audit_events SET subject = \'flood-9\' WHERE seq = 2')
    db.close()
    const broken = await placeguard('audit-trail', 'verify')
    expect(broken).toMatchObject({ status: 1, stdout: expect.stringMatching(/^BROKEN at seq 2 \(edited\): entry 2 does not match its hash/) })
    const json = await placeguard('audit-trail', 'verify', '--json')
    expect(json.status).toBe(1)
    expect(JSON.parse(json.stdout)).toMatchObject({ trail: path, intact: false, entries: 3, brokenAt: 2, reason: 'edited' })
    // The verifier repaired nothing: the dropped trigger is still gone.
    const after = new DatabaseSync(path, { readOnly: true })
    expect(after.prepare('SELECT count(*) AS n FROM sqlite_master WHERE name = \'audit_append_only_update\'').get()).toEqual({ n: 0 })
    after.close()
  })

  it('checks the group\'s PostgreSQL with --database-url', async () => {
    const server = await startPostgres()
    const logger = createLogger({ level: 'silent' })
    const pool = createDatabasePool({ url: server.url, applicationName: 'test-audit-cli', logger, max: 2 })
    try {
      await migrate(pool, { logger })
      const store = new PgAuditStore({ pool })
      for (const sink of ['webhook', 'syslog']) await store.append({ actor: 'operator:3f2a1b0c', action: 'delivery.requeue', subject: sink })
      const whole = await placeguard('audit-trail', 'verify', '--database-url', server.url)
      expect(whole).toMatchObject({ status: 0, stdout: expect.stringMatching(/^intact: 2 entries in postgres:\/\/127\.0\.0\.1:\d+\/placeguard_test\n$/) })
      expect(whole.stdout).not.toContain(new URL(server.url).password)
      await pool.query('BEGIN; ALTER TABLE audit_events DISABLE TRIGGER USER; DELETE FROM audit_events WHERE seq = 1; ALTER TABLE audit_events ENABLE TRIGGER USER; COMMIT')
      expect(await placeguard('audit-trail', 'verify', '--database-url', server.url)).toMatchObject({ status: 1, stdout: expect.stringMatching(/^BROKEN at seq 1 \(deleted\)/) })
    } finally {
      await pool.end()
      await server.stop()
    }
  }, 60_000)
})
