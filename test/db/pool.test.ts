/**
 * The database pool (db/pool.ts) against a real PostgreSQL: its sessions
 * carry the application name and the timeouts from their first statement,
 * and a password never reaches a message or a log line.
 */
import { Writable } from 'node:stream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createDatabasePool, redactDatabaseUrl, type Pool } from '../../db/index.ts'
import { createLogger } from '../../shared/logger.ts'
import { startPostgres, type RunningPostgres } from '../helpers/postgres.ts'

let server: RunningPostgres
const pools: Pool[] = []
const logs: string[] = []
const logger = createLogger({ level: 'info', destination: new Writable({ write (chunk, _encoding, done) { logs.push(String(chunk)); done() } }) })
const pool = (options: { applicationName?: string, statementTimeoutMs?: number, idleInTransactionTimeoutMs?: number } = {}): Pool => {
  const created = createDatabasePool({ url: server.url, applicationName: 'pool-test', logger, ...options })
  pools.push(created)
  return created
}
const password = () => decodeURIComponent(new URL(server.url).password)

beforeAll(async () => { server = await startPostgres() })
afterAll(async () => {
  await Promise.all(pools.map((p) => p.end()))
  await server?.stop()
})

describe('createDatabasePool', () => {
  it('names its sessions and bounds their statements and idle transactions', async () => {
    const db = pool({ applicationName: 'placeguard-collector-c1' })
    const { rows } = await db.query('SELECT current_setting(\'application_name\') AS name, current_setting(\'statement_timeout\') AS statement, current_setting(\'idle_in_transaction_session_timeout\') AS idle')
    expect(rows).toEqual([{ name: 'placeguard-collector-c1', statement: '30s', idle: '1min' }])
  })

  it('cancels a statement that runs past the statement timeout', async () => {
    const db = pool({ statementTimeoutMs: 200 })
    const started = Date.now()
    await expect(db.query('SELECT pg_sleep(5)')).rejects.toMatchObject({ code: '57014' })
    expect(Date.now() - started).toBeLessThan(3_000)
  })

  it('ends a session left idle inside a transaction (a paused collector), releasing its locks', async () => {
    const db = pool({ idleInTransactionTimeoutMs: 200 })
    await db.query('CREATE TABLE IF NOT EXISTS paused (id int PRIMARY KEY)')
    await db.query('INSERT INTO paused VALUES (1) ON CONFLICT DO NOTHING')
    const client = await db.connect()
    client.on('error', () => {}) // the server ends the session while the client is idle
    await client.query('BEGIN')
    await client.query('SELECT * FROM paused WHERE id = 1 FOR UPDATE')
    await new Promise((resolve) => setTimeout(resolve, 600))
    await expect(client.query('SELECT 1')).rejects.toThrow()
    client.release(true)
    // The row lock went with the session: another can take it at once.
    await expect(pool({ statementTimeoutMs: 1_000 }).query('SELECT * FROM paused WHERE id = 1 FOR UPDATE NOWAIT')).resolves.toMatchObject({ rowCount: 1 })
  })

  it('logs a lost connection by host and database, never with the password', async () => {
    const db = pool({ applicationName: 'pool-lost' })
    await db.query('SELECT 1') // one idle connection in the pool
    await pool().query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = \'pool-lost\'')
    const deadline = Date.now() + 5_000
    while (!logs.some((line) => line.includes('database connection (pool-lost) lost')) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
    const line = logs.find((l) => l.includes('database connection (pool-lost) lost'))
    expect(line).toBeDefined()
    expect(line).toContain(`127.0.0.1:${server.port}/placeguard_test`)
    expect(logs.join('')).not.toContain(password())
    await expect(db.query('SELECT 1 AS back')).resolves.toMatchObject({ rows: [{ back: 1 }] })
  })
})

describe('redactDatabaseUrl', () => {
  it('drops the user and password, in the authority and in the query', () => {
    expect(redactDatabaseUrl('postgres://placeguard:hunter2@db.internal:5432/placeguard?sslmode=require')).toBe('postgres://db.internal:5432/placeguard?sslmode=require')
    expect(redactDatabaseUrl('postgresql://db.internal/placeguard?user=pg&password=hunter2')).not.toContain('hunter2')
    expect(redactDatabaseUrl('not a url with hunter2')).toBe('(unparsable database URL)')
  })
})
