/**
 * Where a partition's detection state waits while the partition changes
 * hands: `<prefix>:detection:<p>`, a hash { token, state, savedAt } —
 * `state` is the JSON detection exported for the partition's devices (their
 * learned baselines, last seq and firmware, event windows), `token` the
 * lease token of the collector that wrote it. What the JSON holds is
 * detection's business; this store only keeps it, fenced.
 *
 * The holder writes it every few seconds and when it hands the partition
 * over; whoever takes the partition reads it before reading the
 * partition's entries (app/cluster-ingest.ts).
 *
 * Fenced like the acknowledgement (partition-leases.ts): the write runs in
 * one Lua script with the lease's token check, so a collector that was
 * paused past its lease, and comes back believing it still holds it, cannot
 * overwrite the new holder's snapshot with its older view — not even one
 * whose write it sent just before its lease ran out: a snapshot is never
 * replaced by one written under a smaller token.
 */
import type { ClusterKeys } from './keys.ts'
import type { Redis } from './redis.ts'

/**
 * Save. KEYS: lease, snapshot. ARGV: token, state, savedAt.
 * 1 and the snapshot replaced if the lease's token is that token now and
 * the stored snapshot's token is not larger; 0 and nothing changed otherwise.
 */
const SAVE = `
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
local stored = tonumber(redis.call('HGET', KEYS[2], 'token') or '0')
if stored > tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[2], 'token', ARGV[1], 'state', ARGV[2], 'savedAt', ARGV[3])
return 1`

/** The script, for tests of its contract against a real Redis (not exported from the room). */
export const SNAPSHOT_SCRIPTS = { SAVE } as const

export interface DetectionSnapshot {
  /** The lease token it was written under. */
  token: number
  /** Detection's JSON, as it was written. */
  state: string
  savedAt: string
}

export class DetectionSnapshots {
  readonly #redis: Redis
  readonly #keys: ClusterKeys

  constructor (options: { redis: Redis, keys: ClusterKeys }) {
    this.#redis = options.redis
    this.#keys = options.keys
  }

  /** Writes the partition's snapshot if `token` is its lease's token now; false when refused (the lease changed hands). */
  async save (partition: number, token: number, state: string): Promise<boolean> {
    const saved = await this.#redis.eval(SAVE, 2, this.#keys.lease(partition), this.#keys.detection(partition), token, state, new Date().toISOString())
    return saved === 1
  }

  /** The snapshots of these partitions that exist, in one round trip. */
  async load (partitions: Iterable<number>): Promise<Map<number, DetectionSnapshot>> {
    const list = [...partitions]
    const snapshots = new Map<number, DetectionSnapshot>()
    if (list.length === 0) return snapshots
    const pipeline = this.#redis.pipeline()
    for (const partition of list) pipeline.hmget(this.#keys.detection(partition), 'token', 'state', 'savedAt')
    const results = await pipeline.exec() ?? []
    list.forEach((partition, index) => {
      const [error, reply] = results[index] ?? [new Error('no reply'), null]
      if (error) throw error
      const [token, state, savedAt] = reply as Array<string | null>
      if (token && state) snapshots.set(partition, { token: Number(token), state, savedAt: savedAt ?? '' })
    })
    return snapshots
  }
}
