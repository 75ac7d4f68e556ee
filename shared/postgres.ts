import type { Pool, PoolClient } from 'pg'

/**
 * Runs `work` on one connection of `pool` in one transaction (READ
 * COMMITTED, PostgreSQL's default; row locks are taken by `work`'s own
 * `FOR UPDATE`): committed when it returns, rolled back when it throws.
 * A connection whose ROLLBACK failed too (the server went away) is
 * discarded instead of going back to the pool. The counterpart of
 * inTransaction (shared/sqlite.ts) for the PostgreSQL stores.
 */
export async function inPgTransaction<T> (pool: Pool, work: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect()
  let broken: Error | undefined
  // The pool listens for errors of idle connections only. One lost while this transaction holds it,
  // between two queries, would be an 'error' event nobody hears — the process's death. The next
  // query fails anyway; the error is kept so the connection is discarded, not pooled again.
  const lost = (error: Error): void => { broken = error }
  client.on('error', lost)
  try {
    await client.query('BEGIN')
    const result = await work(client)
    await client.query('COMMIT')
    return result
  } catch (error) {
    await client.query('ROLLBACK').catch((rollback: unknown) => { broken = rollback as Error })
    throw error
  } finally {
    client.off('error', lost)
    client.release(broken)
  }
}
