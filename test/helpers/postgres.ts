/**
 * Debian's PostgreSQL 15 on a free loopback port, in a temp directory of
 * its own (initdb, then `postgres` in the foreground), with a password
 * (scram-sha-256 over TCP, as a real deployment would ask) and a database
 * made for the test.
 *
 * PostgreSQL refuses to run as root. When the tests run as root (CI
 * containers), the directory is chowned to the `postgres` system user that
 * Debian's package creates, and initdb and the server are spawned with
 * that user's uid and gid; as any other user they run as that user.
 *
 * Tuned for test speed, not durability: fsync and full_page_writes are
 * off (`durable: true` leaves PostgreSQL's defaults, for a benchmark that
 * compares commit costs with SQLite's fsync). A killed server (`kill`) still loses nothing committed, since each
 * commit is written to the OS before it is answered; only an OS crash
 * would lose it. (synchronous_commit stays on: off, a SIGKILL within
 * moments of a commit loses it, which a crash test must not mistake for a
 * bug of ours.) `kill` is a crash (SIGKILL to the postmaster: a backend
 * already connected may still answer a moment longer); `shutdown` is a fast
 * shutdown that keeps the files (every connection is cut before it
 * resolves: the database is down for everyone); `restart` starts it again
 * on the same port and files (crash recovery runs after a kill); `stop` is
 * a fast shutdown that removes the directory.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { chownSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { freePort } from './free-port.ts'

const BIN = '/usr/lib/postgresql/15/bin'
const USER = 'placeguard'

export interface RunningPostgres {
  /** postgres://placeguard:<password>@127.0.0.1:<port>/<database>: the test's database. */
  url: string
  port: number
  dir: string
  /** A further empty database on the same server (a test that needs a clean schema); answers its URL. */
  createDatabase: (name: string) => Promise<string>
  kill: () => Promise<void>
  shutdown: () => Promise<void>
  restart: () => Promise<void>
  stop: () => Promise<void>
}

export async function startPostgres (options: { database?: string, durable?: boolean } = {}): Promise<RunningPostgres> {
  const database = options.database ?? 'placeguard_test'
  const dir = mkdtempSync(join(tmpdir(), 'pg-postgres-'))
  const owner = serverUser()
  const password = randomBytes(12).toString('hex')
  const data = join(dir, 'data')
  const pwfile = join(dir, 'pwfile')
  writeFileSync(pwfile, `${password}\n`, { mode: 0o600 })
  if (owner) {
    chownSync(dir, owner.uid, owner.gid)
    chownSync(pwfile, owner.uid, owner.gid)
  }
  const port = await freePort()
  const spawnAs = (command: string, args: string[]): ChildProcess => spawn(join(BIN, command), args, {
    // The server's user may not be able to enter the caller's working directory.
    cwd: dir, stdio: ['ignore', 'ignore', 'pipe'], ...owner, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C.UTF-8' },
  })

  await finished(spawnAs('initdb', ['-D', data, '-U', USER, `--pwfile=${pwfile}`, '--auth-local=trust', '--auth-host=scram-sha-256',
    '-E', 'UTF8', '--locale=C.UTF-8', '--no-sync', '--no-instructions']), 'initdb')
  rmSync(pwfile)

  const admin = `postgres://${USER}:${password}@127.0.0.1:${port}`
  let child: ChildProcess | undefined
  const start = async (): Promise<void> => {
    const server = spawnAs('postgres', ['-D', data, '-p', String(port), '-c', 'listen_addresses=127.0.0.1',
      // No Unix socket: the default directory (/var/run/postgresql) belongs to the system service.
      '-c', 'unix_socket_directories=', ...(options.durable ? [] : ['-c', 'fsync=off', '-c', 'full_page_writes=off']),
      '-c', 'max_connections=200', '-c', 'log_min_messages=warning'])
    child = server
    let stderr = ''
    server.stderr?.on('data', (chunk) => { stderr = (stderr + chunk).slice(-4_000) })
    const deadline = Date.now() + 20_000
    while (!await answers(`${admin}/postgres`)) {
      if (server.exitCode !== null || server.signalCode !== null) throw new Error(`postgres exited with ${server.exitCode ?? server.signalCode}: ${stderr}`)
      if (Date.now() > deadline) {
        await halt('SIGKILL')
        throw new Error(`postgres did not accept connections within 20 s: ${stderr}`)
      }
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }
  const halt = async (signal: NodeJS.Signals): Promise<void> => {
    const running = child
    child = undefined
    if (!running || running.exitCode !== null || running.signalCode !== null) return
    const exited = new Promise((resolve) => running.once('exit', resolve))
    running.kill(signal)
    await exited
  }
  const createDatabase = async (name: string): Promise<string> => {
    if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new Error(`not a plain database name: ${name}`)
    const client = new pg.Client({ connectionString: `${admin}/postgres` })
    await client.connect()
    try {
      await client.query(`CREATE DATABASE ${name}`)
    } finally {
      await client.end()
    }
    return `${admin}/${name}`
  }

  await start()
  const url = await createDatabase(database)
  return {
    url, port, dir, createDatabase,
    kill: () => halt('SIGKILL'),
    shutdown: () => halt('SIGINT'),
    restart: async () => {
      await halt('SIGINT')
      // After a kill the postmaster's children notice its death and leave within moments; until they have, a new server refuses the data directory.
      for (let attempt = 1; ; attempt++) {
        try {
          return await start()
        } catch (error) {
          if (attempt >= 40 || !/still in use|already running/i.test((error as Error).message)) throw error
          await new Promise((resolve) => setTimeout(resolve, 250))
        }
      }
    },
    // SIGINT is the fast shutdown: SIGTERM's smart shutdown would wait for every client to disconnect.
    stop: async () => { await halt('SIGINT'); rmSync(dir, { recursive: true, force: true }) },
  }
}

/** The `postgres` system user when we are root (PostgreSQL will not run as root); none otherwise. */
function serverUser (): { uid: number, gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined
  const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((entry) => entry.startsWith('postgres:'))
  if (!line) throw new Error('running as root and there is no postgres user (is Debian\'s postgresql package installed?)')
  const [, , uid, gid] = line.split(':')
  return { uid: Number(uid), gid: Number(gid) }
}

function finished (child: ChildProcess, what: string): Promise<void> {
  let stderr = ''
  child.stderr?.on('data', (chunk) => { stderr += chunk })
  return new Promise((resolve, reject) => {
    child.once('error', reject)
    child.once('exit', (code) => code === 0 ? resolve() : reject(new Error(`${what} exited with ${code}: ${stderr}`)))
  })
}

async function answers (url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1_000 })
  client.on('error', () => {})
  try {
    await client.connect()
    await client.query('SELECT 1')
    return true
  } catch {
    return false
  } finally {
    await client.end().catch(() => {})
  }
}

/**
 * Resolves once a session named `applicationName` (pg_stat_activity) waits
 * on a lock: a row, a unique index entry, an advisory lock. Tests use it to
 * know a second connection is really blocked behind a first, not merely
 * slow, before they let the first go on.
 */
export async function waitForLockWait (db: pg.Pool, applicationName: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const { rows } = await db.query<{ waiting: number }>('SELECT count(*)::int AS waiting FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = \'Lock\'', [applicationName])
    if (rows[0]!.waiting > 0) return
    if (Date.now() > deadline) throw new Error(`no session of ${applicationName} waited on a lock within ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}
