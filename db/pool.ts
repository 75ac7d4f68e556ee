/**
 * The collector group's PostgreSQL connections (node-postgres, pure JS).
 * A URL's password never reaches a message or a log line: the database is
 * named by `redactDatabaseUrl`, and pg's own errors carry no credentials.
 *
 * Every connection of the pool starts with its settings in the startup
 * message, so they hold from the first statement and after a reconnect:
 *   - application_name, so `pg_stat_activity` tells collectors apart;
 *   - statement_timeout: no statement of ours runs unbounded (a lock wait
 *     counts; the migrator lifts it on its own connection);
 *   - idle_in_transaction_session_timeout: a collector paused (SIGSTOP, a
 *     long GC) inside a transaction loses it, and the row locks it held (a
 *     sink's head, a live alert), instead of stalling the group.
 */
import pg from 'pg'
import type { Logger } from '../shared/logger.ts'

export type { Client, Pool, PoolClient } from 'pg'

export interface DatabasePoolOptions {
  /** postgres://user:password@host:port/database (PLACEGUARD_DATABASE_URL). */
  url: string
  /** Shown in pg_stat_activity: e.g. `placeguard-collector-<id>`. */
  applicationName: string
  logger: Logger
  /** Longest a statement may run (ms); default 30 s. */
  statementTimeoutMs?: number
  /** Longest a transaction may sit idle (ms) before the server ends the session; default 60 s. */
  idleInTransactionTimeoutMs?: number
  /** Connections at most; default 10. */
  max?: number
  /** Longest a new connection may take (ms); default 10 s. */
  connectTimeoutMs?: number
}

export const DEFAULT_STATEMENT_TIMEOUT_MS = 30_000
export const DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT_MS = 60_000

/** The URL without its credentials, for messages. */
export function redactDatabaseUrl (url: string): string {
  try {
    const parsed = new URL(url)
    parsed.username = ''
    parsed.password = ''
    // A password may also come as a query parameter (libpq's `?password=`).
    if (parsed.searchParams.has('password')) parsed.searchParams.set('password', '[redacted]')
    return parsed.toString()
  } catch {
    return '(unparsable database URL)'
  }
}

export function createDatabasePool (options: DatabasePoolOptions): pg.Pool {
  const where = redactDatabaseUrl(options.url)
  const pool = new pg.Pool({
    connectionString: options.url,
    application_name: options.applicationName,
    statement_timeout: options.statementTimeoutMs ?? DEFAULT_STATEMENT_TIMEOUT_MS,
    idle_in_transaction_session_timeout: options.idleInTransactionTimeoutMs ?? DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT_MS,
    max: options.max ?? 10,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 10_000,
  })
  // An idle connection that fails (the server restarted, the network
  // dropped) is an 'error' on the pool; unheard, it would end the process.
  // The pool discards that connection and opens a new one when asked.
  pool.on('error', (error: Error) => {
    options.logger.error({ database: where, err: error.message }, `database connection (${options.applicationName}) lost; the next query reconnects`)
  })
  return pool
}

/**
 * One connection outside the pool, with the pool's settings, connected: a
 * session that LISTENs must stay the same session, which a pool does not
 * promise. Its queries also time out on the client's side (statement
 * timeout and 5 s more), so a connection whose peer is gone without a word
 * (a dropped network) shows as an error instead of a wait without end. The
 * caller ends it, and must listen for its 'error'.
 */
export async function connectDatabaseClient (options: Omit<DatabasePoolOptions, 'max' | 'logger'>): Promise<pg.Client> {
  const statementTimeoutMs = options.statementTimeoutMs ?? DEFAULT_STATEMENT_TIMEOUT_MS
  const client = new pg.Client({
    connectionString: options.url,
    application_name: options.applicationName,
    statement_timeout: statementTimeoutMs,
    query_timeout: statementTimeoutMs + 5_000,
    idle_in_transaction_session_timeout: options.idleInTransactionTimeoutMs ?? DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT_MS,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 10_000,
    keepAlive: true,
  })
  // While connecting, a failure is the rejection below; afterwards the caller's listener hears it.
  const duringConnect = (): void => {}
  client.on('error', duringConnect)
  try {
    await client.connect()
  } catch (error) {
    await client.end().catch(() => {})
    throw error
  } finally {
    client.off('error', duringConnect)
  }
  return client
}
