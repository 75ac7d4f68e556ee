/**
 * Fencing tokens for the collector group's writes to PostgreSQL (issue 15).
 *
 * A collector reads a telemetry partition under a lease in Redis
 * (cluster/partition-leases.ts) whose token grows with every new lease. A
 * collector that was paused past its lease's expiry (SIGSTOP, a long GC, a
 * frozen VM) comes back believing it still holds the partition; what it
 * writes then must not land over the new holder's work. So a write made
 * for a partition carries the token, and the database checks it in the
 * same transaction, first (db/migrations/0001_initial.sql,
 * `partition_fencing`): the row keeps the highest token it was shown, and
 * a lower one rolls the transaction back. The new holder shows its token
 * when it takes the partition, before it reads anything, so from then on
 * the old holder's writes are refused even if the new one has written
 * nothing yet.
 */
import type { Pool, PoolClient } from 'pg'

/** The lease a write is made under. */
export interface Fence { partition: number, token: number }

/** A write refused because a newer lease on its partition was shown to the database: the writer's lease is stale. Not worth retrying. */
export class StaleLeaseError extends Error {
  /** Retrying cannot help: the partition has a newer holder, who handles the same input. */
  readonly permanent = true
  readonly partition: number

  constructor (fence: Fence) {
    super(`partition ${fence.partition}: lease token ${fence.token} is stale (a newer holder has shown the database a higher one); write refused`)
    this.name = 'StaleLeaseError'
    this.partition = fence.partition
  }
}

/** Keeps the highest token per partition; answers no row when the given one is lower (the row lock orders it against the next holder's). */
const SHOW_TOKEN = `INSERT INTO partition_fencing (partition, token) VALUES ($1, $2)
ON CONFLICT (partition) DO UPDATE SET token = excluded.token WHERE partition_fencing.token <= excluded.token
RETURNING token`

/** Inside a write's transaction, first: throws StaleLeaseError (and so rolls the transaction back) when the fence is stale. */
export async function checkFence (client: PoolClient, fence: Fence): Promise<void> {
  const { rowCount } = await client.query(SHOW_TOKEN, [fence.partition, fence.token])
  if (rowCount === 0) throw new StaleLeaseError(fence)
}

/** A new holder shows its tokens before it reads its partitions; answers the partitions whose token was already stale. */
export async function showFences (pool: Pool, fences: Iterable<Fence>): Promise<number[]> {
  const stale: number[] = []
  for (const fence of fences) {
    const { rowCount } = await pool.query(SHOW_TOKEN, [fence.partition, fence.token])
    if (rowCount === 0) stale.push(fence.partition)
  }
  return stale
}
