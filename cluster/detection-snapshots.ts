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
 * partition's entries (app/cluster-ingest.ts). Between two snapshots, the
 * state of the devices each batch changed is appended to
 * `<prefix>:detection:<p>:changes` before the batch is acknowledged, so a
 * holder killed without warning hands on everything it acknowledged, not a
 * view up to a snapshot period old; a snapshot empties the list, since it
 * holds all of it. Whoever takes the partition applies the snapshot, then
 * the changes in order.
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
 * Save. KEYS: lease, snapshot, changes. ARGV: token, state, savedAt.
 * 1, the snapshot replaced and the changes since the last one dropped (the
 * snapshot holds them) if the lease's token is that token now and the
 * stored snapshot's token is not larger; 0 and nothing changed otherwise.
 */
const SAVE = `
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
local stored = tonumber(redis.call('HGET', KEYS[2], 'token') or '0')
if stored > tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[2], 'token', ARGV[1], 'state', ARGV[2], 'savedAt', ARGV[3])
redis.call('DEL', KEYS[3])
return 1`

/**
 * Append changes. KEYS: lease, snapshot, changes. ARGV: token, state.
 * 1 and appended under the same fence as SAVE; 0 and nothing changed otherwise.
 */
const APPEND = `
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
local stored = tonumber(redis.call('HGET', KEYS[2], 'token') or '0')
if stored > tonumber(ARGV[1]) then return 0 end
redis.call('RPUSH', KEYS[3], ARGV[2])
return 1`

/** The scripts, for tests of their contract against a real Redis (not exported from the room). */
export const SNAPSHOT_SCRIPTS = { SAVE, APPEND } as const

export interface DetectionSnapshot {
  /** The lease token it was written under. */
  token: number
  /** Detection's JSON, as it was written. */
  state: string
  savedAt: string
}

/** What a partition's new holder applies: the snapshot if there is one, then the changes appended since, oldest first. */
export interface PartitionState {
  snapshot: DetectionSnapshot | undefined
  changes: string[]
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
    const saved = await this.#redis.eval(SAVE, 3, this.#keys.lease(partition), this.#keys.detection(partition), this.#keys.detectionChanges(partition),
      token, state, new Date().toISOString())
    return saved === 1
  }

  /** Appends the state of devices that changed since the snapshot, if `token` is the partition's lease token now; false when refused. */
  async append (partition: number, token: number, state: string): Promise<boolean> {
    const appended = await this.#redis.eval(APPEND, 3, this.#keys.lease(partition), this.#keys.detection(partition), this.#keys.detectionChanges(partition), token, state)
    return appended === 1
  }

  /** Each partition's snapshot (if any) and the changes appended since, in one round trip; partitions with neither are left out. */
  async load (partitions: Iterable<number>): Promise<Map<number, PartitionState>> {
    const list = [...partitions]
    const states = new Map<number, PartitionState>()
    if (list.length === 0) return states
    // MULTI: the snapshot and its changes as of one moment (a SAVE between two reads would drop changes the first read missed).
    const multi = this.#redis.multi()
    for (const partition of list) {
      multi.hmget(this.#keys.detection(partition), 'token', 'state', 'savedAt')
      multi.lrange(this.#keys.detectionChanges(partition), 0, -1)
    }
    const results = await multi.exec() ?? []
    list.forEach((partition, index) => {
      const [error, reply] = results[2 * index] ?? [new Error('no reply'), null]
      if (error) throw error
      const [changesError, changes] = results[2 * index + 1] ?? [new Error('no reply'), null]
      if (changesError) throw changesError
      const [token, state, savedAt] = reply as Array<string | null>
      const snapshot = token && state ? { token: Number(token), state, savedAt: savedAt ?? '' } : undefined
      if (snapshot || (changes as string[]).length > 0) states.set(partition, { snapshot, changes: changes as string[] })
    })
    return states
  }
}
