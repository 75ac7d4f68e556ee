/**
 * The CLI's fleet-changing commands in the operator audit trail, as an
 * operator runs them: the real `placeguard` command on a data directory,
 * then `audit-trail verify` and `audit-trail list` — with another process
 * appending to the same trail meanwhile, as the collector does; the
 * group's PostgreSQL trail with PLACEGUARD_DATABASE_URL; and a trail that
 * cannot be written, which refuses an issue but lets a revocation through.
 */
import { spawn, spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { hostname, tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { type AuditEntry, PgAuditStore, SqliteAuditStore } from '../../audit/index.ts'
import { createDatabasePool, migrate } from '../../db/index.ts'
import { createLogger } from '../../shared/logger.ts'
import { startPostgres } from '../helpers/postgres.ts'

const scratch = mkdtempSync(join(tmpdir(), 'placeguard-cli-actions-'))
afterAll(() => rmSync(scratch, { recursive: true, force: true }))
const actor = `cli:${userInfo().username}`
const from = `cli@${hostname()}`

interface Run { status: number | null, stdout: string, stderr: string }

/** The real `placeguard` command, asynchronously (the servers these tests start are this process's children). */
function placeguard (dataDir: string, args: string[], env: Record<string, string> = {}): Promise<Run> {
  const child = spawn(process.execPath, ['bin/placeguard.js', '--data-dir', dataDir, ...args], { env: { ...process.env, PLACEGUARD_DATABASE_URL: '', PLACEGUARD_REDIS_URL: '', ...env } })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk) => { stdout += chunk })
  child.stderr.on('data', (chunk) => { stderr += chunk })
  return new Promise((resolve) => child.once('close', (status) => resolve({ status, stdout, stderr })))
}

async function ok (dataDir: string, args: string[], env?: Record<string, string>): Promise<Run> {
  const run = await placeguard(dataDir, args, env)
  if (run.status !== 0) throw new Error(`placeguard ${args.join(' ')} exited ${run.status}: ${run.stderr}`)
  return run
}

function csrFor (cn: string): string {
  const dir = mkdtempSync(join(scratch, 'csr-'))
  const csr = join(dir, `${cn}.csr`)
  const made = spawnSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, `${cn}.key`), '-out', csr, '-subj', `/CN=${cn}`])
  if (made.status !== 0) throw new Error(String(made.stderr))
  return csr
}

/** The trail's entries of the CLI, as `action subject outcome`. */
function cliActions (entries: AuditEntry[]): string[] {
  return entries.filter((e) => e.actor === actor).map((e) => `${e.action} ${e.subject ?? '-'} ${String(e.detail.outcome)}`)
}

describe('the CLI in the audit trail (<data-dir>/audit.db)', () => {
  it('records each command before and after it runs, in the chain the collector appends to at the same time', async () => {
    const dataDir = join(scratch, 'embedded')
    await ok(dataDir, ['pki', 'init'])
    // The collector's side: another process appending to the same file until the commands are done.
    const writer = spawn(process.execPath, [join(import.meta.dirname, '..', 'helpers', 'audit-writer-process.ts'), join(dataDir, 'audit.db'), 'operator:3f2a1b0c'], { stdio: ['pipe', 'pipe', 'inherit'] })
    let said = ''
    writer.stdout.on('data', (chunk) => { said += chunk })
    await new Promise<void>((resolve) => writer.stdout.once('data', () => resolve()))
    writer.stdin.write('go\n')

    await ok(dataDir, ['pki', 'issue', 'flood-1', '--kind', 'flood', '--site', 'riverside', '--vendor', 'Acme', '--model', 'FloodEye 2'])
    await ok(dataDir, ['pki', 'issue', 'ttn-1', '--role', 'integration', '--network', 'tts', '--site', 'riverside'])
    await ok(dataDir, ['pki', 'sign', csrFor('flood-2'), '--kind', 'flood', '--site', 'riverside'])
    await ok(dataDir, ['pki', 'renew', 'flood-1'])
    await ok(dataDir, ['devices', 'add', 'lora-1', '--kind', 'flood', '--site', 'riverside', '--dev-eui', '0011223344556677', '--integration', 'ttn-1'])
    await ok(dataDir, ['devices', 'remove', 'lora-1'])
    mkdirSync(join(scratch, 'osv'), { recursive: true })
    await ok(dataDir, ['advisories', 'sync', '--osv', join(scratch, 'osv')])
    await ok(dataDir, ['pki', 'revoke', 'flood-1'])
    // No broker runs: the quarantine fails, and the trail says so.
    const quarantine = await placeguard(dataDir, ['quarantine', 'add', 'flood-2', '--for', '1h', '--reason', 'odd traffic', '--broker', 'mqtts://127.0.0.1:1'])
    expect(quarantine.stderr).toContain('PG_ERR_BROKER_UNREACHABLE')
    // A mistaken command is refused, and recorded as refused.
    expect((await placeguard(dataDir, ['pki', 'issue', 'flood-2', '--kind', 'flood', '--site', 'riverside'])).status).toBe(1)

    writer.stdin.end('stop\n')
    await new Promise((resolve) => writer.once('exit', resolve))
    const collectorEntries = Number(said.split('\n')[1])
    expect(collectorEntries).toBeGreaterThan(0)

    const verify = await placeguard(dataDir, ['audit-trail', 'verify', '--json'])
    expect(verify.status).toBe(0)
    expect(JSON.parse(verify.stdout)).toMatchObject({ intact: true, entries: collectorEntries + 20 })

    const listed = JSON.parse((await ok(dataDir, ['audit-trail', 'list', '--json', '--limit', '500000'])).stdout) as AuditEntry[]
    expect(cliActions(listed)).toEqual([
      'pki.issue flood-1 requested', 'pki.issue flood-1 done',
      'pki.issue ttn-1 requested', 'pki.issue ttn-1 done',
      'pki.sign - requested', 'pki.sign flood-2 done',
      'pki.renew flood-1 requested', 'pki.renew flood-1 done',
      'devices.add lora-1 requested', 'devices.add lora-1 done',
      'devices.remove lora-1 requested', 'devices.remove lora-1 done',
      'advisories.sync - requested', 'advisories.sync - done',
      'pki.revoke flood-1 requested', 'pki.revoke flood-1 done',
      'quarantine.add flood-2 requested', 'quarantine.add flood-2 failed',
      'pki.issue flood-2 requested', 'pki.issue flood-2 refused',
    ])
    // The collector's entries and the CLI's interleave: both wrote while the other did.
    const seqs = listed.filter((e) => e.actor === actor).map((e) => e.seq)
    expect(listed.some((e) => e.actor !== actor && e.seq > seqs[0]! && e.seq < seqs.at(-1)!)).toBe(true)

    const byAction = (action: string, outcome: string) => listed.find((e) => e.action === action && e.detail.outcome === outcome)!
    expect(byAction('pki.issue', 'requested')).toMatchObject({ actor, from, detail: { kind: 'flood', site: 'riverside', vendor: 'Acme', model: 'FloodEye 2', key: 'ecdsa', role: 'device' } })
    const issued = byAction('pki.issue', 'done')
    expect(issued.detail).toMatchObject({ request: byAction('pki.issue', 'requested').seq, serial: expect.stringMatching(/^[0-9a-f]+$/) })
    expect(byAction('pki.revoke', 'done').detail).toMatchObject({ revoked: expect.arrayContaining([issued.detail.serial]) })
    expect(byAction('quarantine.add', 'requested').detail).toEqual({ outcome: 'requested', for: '1h', reason: 'odd traffic' })
    expect(byAction('quarantine.add', 'failed').detail).toMatchObject({ code: 'PG_ERR_BROKER_UNREACHABLE' })
    expect(byAction('pki.issue', 'refused').detail).toMatchObject({ code: 'PG_ERR_PKI_DUPLICATE_ID' })
    expect(byAction('advisories.sync', 'done').detail).toMatchObject({ synced: [{ new: 0, refused: 0 }] })
    // Never key material: no PEM in any entry.
    expect(JSON.stringify(listed)).not.toContain('-----BEGIN')
  }, 120_000)

  it('refuses an issue the trail cannot record, and carries a revocation out all the same, saying so', async () => {
    const dataDir = join(scratch, 'unwritable')
    await ok(dataDir, ['pki', 'init'])
    await ok(dataDir, ['pki', 'issue', 'flood-1', '--kind', 'flood', '--site', 'riverside'])
    // Where audit.db should be, a directory: the trail cannot be opened.
    rmSync(join(dataDir, 'audit.db'), { force: true })
    rmSync(join(dataDir, 'audit.db-wal'), { force: true })
    rmSync(join(dataDir, 'audit.db-shm'), { force: true })
    mkdirSync(join(dataDir, 'audit.db'))

    const issue = await placeguard(dataDir, ['pki', 'issue', 'flood-2', '--kind', 'flood', '--site', 'riverside'])
    expect(issue).toMatchObject({ status: 1, stderr: expect.stringContaining('PG_ERR_AUDIT_UNAVAILABLE: pki.issue was not carried out') })
    const revoke = await placeguard(dataDir, ['pki', 'revoke', 'flood-1'])
    expect(revoke).toMatchObject({ status: 0, stderr: expect.stringContaining('cannot record pki.revoke') })

    const inventory = JSON.parse((await ok(dataDir, ['pki', 'list', '--json'])).stdout) as Array<{ id: string, status: string }>
    expect(inventory.map((e) => `${e.id} ${e.status}`)).toEqual(['flood-1 revoked'])
  }, 60_000)
})

describe('the CLI in the group\'s PostgreSQL trail (PLACEGUARD_DATABASE_URL)', () => {
  it('appends to the trail the collectors write, while a collector appends too', async () => {
    const server = await startPostgres()
    const logger = createLogger({ level: 'silent' })
    const pool = createDatabasePool({ url: server.url, applicationName: 'test-collector', logger, max: 2 })
    const dataDir = join(scratch, 'group')
    try {
      await migrate(pool, { logger })
      const store = new PgAuditStore({ pool })
      await ok(dataDir, ['pki', 'init'])
      let collecting = true
      let collected = 0
      const collector = (async () => {
        while (collecting) await store.append({ actor: 'operator:3f2a1b0c', action: 'alert.comment', subject: `alr-${collected++}` })
      })()
      // A syslog sink configured: the CLI's entries are queued for it in the group's outbox (none sends them here).
      const env = { PLACEGUARD_DATABASE_URL: server.url, PLACEGUARD_SYSLOG_URL: 'tcp://127.0.0.1:9' }
      await ok(dataDir, ['pki', 'issue', 'flood-1', '--kind', 'flood', '--site', 'riverside'], env)
      await ok(dataDir, ['pki', 'revoke', 'flood-1'], env)
      collecting = false
      await collector

      expect(await store.verify()).toEqual({ intact: true, entries: collected + 4 })
      const entries = (await store.page({ order: 'oldest' }, 100_000)).items
      expect(cliActions(entries)).toEqual(['pki.issue flood-1 requested', 'pki.issue flood-1 done', 'pki.revoke flood-1 requested', 'pki.revoke flood-1 done'])
      expect(entries.find((e) => e.actor === actor)).toMatchObject({ from })
      const { rows: queued } = await pool.query<{ alert_id: string }>('SELECT alert_id FROM deliveries WHERE sink = \'syslog\' AND change = \'audit\' ORDER BY seq')
      expect(queued.map((row) => row.alert_id)).toEqual(entries.filter((e) => e.actor === actor).map((e) => `audit:${e.seq}`))
      // Nothing went to a file beside the data: the group's trail is the one.
      expect(new SqliteAuditStore({ path: join(dataDir, 'audit.db') }).verify()).toEqual({ intact: true, entries: 0 })
      const listed = await ok(dataDir, ['audit-trail', 'list', '--subject', 'flood-1'], env)
      expect(listed.stdout).toMatch(/pki\.revoke\s+flood-1\s+cli@\S+\s+done/)
    } finally {
      await pool.end()
      await server.stop()
    }
  }, 120_000)
})
