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
  try {
    await client.query('BEGIN')
    const result = await work(client)
    await client.query('COMMIT')
    return result
  } catch (error) {
    await client.query('ROLLBACK').catch((rollback: unknown) => { broken = rollback as Error })
    throw error
  } finally {
    client.release(broken)
  }
}
