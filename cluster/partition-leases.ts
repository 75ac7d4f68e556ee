/**
 * A group of collectors sharing the telemetry partitions: each partition is
 * read by one collector at a time, the holder of its lease in Redis
 * (`<prefix>:lease:<p>`, a hash { owner, token } with a PX expiry). No
 * consensus of our own: a lease is taken, renewed, released and checked by
 * Lua scripts, each atomic in Redis, and Redis' key expiry decides when a
 * silent holder has lost it.
 *
 * Fencing tokens. Each time a lease is taken its token is the next value of
 * `<prefix>:lease-token:<p>` (INCR, never reset), so a later holder always
 * has a larger token than any earlier one. A collector that was paused
 * (SIGSTOP, a long GC, a frozen VM) past its lease's expiry comes back
 * believing it still holds it; everything it does on the partition's behalf
 * carries the token it read the entries under, and Redis refuses a stale
 * one:
 *  - `ack` is XACK fenced in one script: an acknowledgement with a stale
 *    token is refused, atomically — there is no gap.
 *  - `check` / `checkAll` answer whether a token is still the partition's.
 *    The StreamReader asks before it hands a batch over (a batch read under
 *    a lost lease is dropped: neither handled nor acknowledged), and a store
 *    or alert writer may ask right before it writes. That is check-then-
 *    write: a holder paused between the check and its write still writes
 *    once, late. Writes keyed by entry (the stores' points are) make that a
 *    rewrite of the same point; the PostgreSQL store of the next step
 *    carries the token into the database, which refuses a write older than
 *    the last one it took for the partition.
 *
 * Balance. Each collector beats a heartbeat (`<prefix>:collector:<name>`,
 * expiring like the nodes' ones) and, every round, computes from the live
 * members alone which member each partition belongs to: rendezvous hashing
 * capped at ceil(partitions / members) per member (`assignPartitions`), the
 * same answer on every collector that sees the same members. It takes the
 * partitions assigned to it when they are free or expired, and hands over
 * the ones assigned to another live member once the batch using them is
 * done. Two collectors that briefly disagree about the members cannot both
 * hold a partition: taking a lease is atomic and only ever succeeds on a
 * free one.
 *
 * Timings (defaults): a lease lives 10 s and is renewed every 3 s, a
 * heartbeat likewise; a collector killed with SIGKILL loses its partitions
 * within 10 s, and another takes them at its next round, within 13 s.
 */
import { randomUUID } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import type { Logger } from '../shared/logger.ts'
import { COLLECTOR_GROUP, type ClusterKeys } from './keys.ts'
import type { Redis } from './redis.ts'
import { fnv1a } from '../shared/fnv1a.ts'

export const DEFAULT_LEASE_TTL_MS = 10_000
export const DEFAULT_LEASE_RENEW_MS = 3_000
/** While it waits for partitions another member is handing over (or hands some over itself), a collector looks this often. */
export const DEFAULT_LEASE_SETTLE_MS = 1_000

/**
 * Take. KEYS: lease, token counter. ARGV: member, ttl ms.
 * Free (absent or expired) or already this member's (its previous run,
 * crashed): the lease becomes { owner = member, token = INCR counter } for
 * ttl and the new token is returned. Held by another member: its name is
 * returned and nothing changes.
 */
const ACQUIRE = `
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner and owner ~= ARGV[1] then return owner end
local token = redis.call('INCR', KEYS[2])
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'token', token)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return token`

/** Renew. KEYS: lease. ARGV: member, token, ttl ms. 1 and the expiry reset to ttl if the lease is (member, token); 0 otherwise. */
const RENEW = `
local lease = redis.call('HMGET', KEYS[1], 'owner', 'token')
if lease[1] == ARGV[1] and lease[2] == ARGV[2] then return redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return 0`

/** Release. KEYS: lease. ARGV: member, token. 1 and the lease deleted if it is (member, token); 0 otherwise. */
const RELEASE = `
local lease = redis.call('HMGET', KEYS[1], 'owner', 'token')
if lease[1] == ARGV[1] and lease[2] == ARGV[2] then return redis.call('DEL', KEYS[1]) end
return 0`

/** Check. KEYS: n leases. ARGV: n tokens. For each, 1 if that lease's token is that token now, else 0 (tokens are unique per partition: no owner needed). */
const CHECK = `
local valid = {}
for i, key in ipairs(KEYS) do
  if redis.call('HGET', key, 'token') == ARGV[i] then valid[i] = 1 else valid[i] = 0 end
end
return valid`

/** Fenced acknowledgement. KEYS: lease, stream. ARGV: token, group, ids…. -1 if the lease's token is not that token; else XACK's count. */
const FENCED_ACK = `
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return -1 end
return redis.call('XACK', KEYS[2], ARGV[2], unpack(ARGV, 3))`
const ACK_SLICE = 4_000

/** The scripts, for tests of their contracts against a real Redis (not exported from the room). */
export const LEASE_SCRIPTS = { ACQUIRE, RENEW, RELEASE, CHECK, FENCED_ACK } as const

export interface PartitionLeasesOptions {
  /** A connection that never blocks: renewals must not wait behind an XREADGROUP BLOCK. */
  redis: Redis
  keys: ClusterKeys
  partitions: number
  /** This collector's name: lease owner and stream consumer; unique in the group, stable across restarts. */
  member: string
  logger: Logger
  ttlMs?: number
  renewMs?: number
  settleMs?: number
  /**
   * Partitions just taken, with their tokens: awaited before any of them
   * is read, so what travels with a partition (detection's state) is in
   * place before its first entry. If it fails, none of them is held; they
   * are taken again, under new tokens, at the next round.
   */
  onTaken?: (taken: ReadonlyMap<number, number>) => Promise<void>
  /**
   * Partitions about to be released (handed over, or at stop), their
   * leases still this collector's and no batch using them: awaited; a
   * failure is logged and the release goes on.
   */
  onReleasing?: (leases: ReadonlyMap<number, number>) => Promise<void>
  /** Partitions no longer held here: released, or lost. */
  onGone?: (partitions: readonly number[]) => void
}

export interface CollectorBeat {
  member: string
  /** One run of the process: a second process under the same name shows up as a second instance. */
  instance: string
  startedAt: string
  beatAt: string
  pid: number
  partitions: number[]
}

interface Lease {
  token: number
  /** performance.now() until which this collector is sure it holds the lease: renewal sent + ttl. */
  validUntil: number
}

export class PartitionLeases {
  readonly #options: Required<Omit<PartitionLeasesOptions, 'onTaken' | 'onReleasing' | 'onGone'>> & Pick<PartitionLeasesOptions, 'onTaken' | 'onReleasing' | 'onGone'>
  readonly #instance = randomUUID()
  readonly #startedAt = new Date().toISOString()
  readonly #held = new Map<number, Lease>()
  /** Held, assigned to another member: no longer read, released once no batch uses them. */
  readonly #handingOver = new Set<number>()
  /** Partitions a batch is using (read, handled, acknowledged), with how many batches. */
  readonly #busy = new Map<number, number>()
  #members: string[] = []
  #plan: string[] = []
  #stopped = true
  #beaten = false
  #timer: NodeJS.Timeout | undefined
  /** Rounds, releases and the stop run one at a time. */
  #serial: Promise<void> = Promise.resolve()
  readonly counters = { acquired: 0, released: 0, lost: 0 }

  constructor (options: PartitionLeasesOptions) {
    this.#options = { ttlMs: DEFAULT_LEASE_TTL_MS, renewMs: DEFAULT_LEASE_RENEW_MS, settleMs: DEFAULT_LEASE_SETTLE_MS, ...options }
    if (this.#options.renewMs * 2 >= this.#options.ttlMs) throw new Error('lease renewMs must be under half of ttlMs: one missed renewal must not lose the lease')
  }

  get member (): string {
    return this.#options.member
  }

  /** The live members of the group at the last round, this one included. */
  get members (): readonly string[] {
    return this.#members
  }

  /** Beats, takes what is free and assigned to it (awaited: a collector alone holds every free partition once this resolves), then keeps going. */
  async start (): Promise<void> {
    this.#stopped = false
    await this.#serialized(() => this.#round())
    this.#schedule()
  }

  /**
   * The partitions to read now, with their tokens: held, not being handed
   * over, and sure to stay held for `marginMs` more (a blocking read must
   * not outlive the lease).
   */
  held (marginMs = 0): Map<number, number> {
    const now = performance.now()
    const held = new Map<number, number>()
    for (const [partition, lease] of this.#held) {
      if (!this.#handingOver.has(partition) && lease.validUntil - now > marginMs) held.set(partition, lease.token)
    }
    return held
  }

  /** The token of a partition this collector holds now (being handed over included), else undefined. */
  token (partition: number): number | undefined {
    const lease = this.#held.get(partition)
    return lease && lease.validUntil > performance.now() ? lease.token : undefined
  }

  /**
   * The token to fence a write with (shared/fencing.ts): the one this
   * collector holds the partition by, even past the lease's expiry by its
   * own clock, until it learns the partition is gone. A collector that was
   * paused writes with its old token, and the database refuses it.
   */
  fenceToken (partition: number): number | undefined {
    return this.#held.get(partition)?.token
  }

  /** Whether `token` is the partition's lease token in Redis now (check-then-write: see the header). */
  async check (partition: number, token: number): Promise<boolean> {
    return (await this.checkAll(new Map([[partition, token]]))).has(partition)
  }

  /** The partitions among these whose token is still theirs in Redis, in one round trip. */
  async checkAll (tokens: ReadonlyMap<number, number>): Promise<Set<number>> {
    const partitions = [...tokens.keys()]
    if (partitions.length === 0) return new Set()
    const { redis, keys } = this.#options
    const valid = await redis.eval(CHECK, partitions.length, ...partitions.map((p) => keys.lease(p)), ...partitions.map((p) => tokens.get(p)!)) as number[]
    return new Set(partitions.filter((_, index) => valid[index] === 1))
  }

  /** XACK of these entries of the partition if `token` is still its lease's, in one atomic step; undefined when refused. */
  async ack (partition: number, token: number, ids: readonly string[]): Promise<number | undefined> {
    const { redis, keys } = this.#options
    let total = 0
    // Lua's unpack takes a few thousand arguments at most: long lists go in slices, each fenced.
    for (let start = 0; start < ids.length; start += ACK_SLICE) {
      const acked = await redis.eval(FENCED_ACK, 2, keys.lease(partition), keys.stream(partition), token, COLLECTOR_GROUP, ...ids.slice(start, start + ACK_SLICE)) as number
      if (acked < 0) return undefined
      total += acked
    }
    return total
  }

  /** Runs `work` with these partitions marked in use: none of them is handed over before it ends (a lease lost meanwhile is lost all the same). */
  async inUse<T> (partitions: Iterable<number>, work: () => Promise<T>): Promise<T> {
    const list = [...partitions]
    for (const partition of list) this.#busy.set(partition, (this.#busy.get(partition) ?? 0) + 1)
    try {
      return await work()
    } finally {
      for (const partition of list) {
        const count = this.#busy.get(partition)! - 1
        if (count > 0) this.#busy.set(partition, count)
        else this.#busy.delete(partition)
      }
      if (!this.#stopped && list.some((partition) => this.#handingOver.has(partition))) {
        this.#serialized(() => this.#releaseIdle()).catch((error: Error) => this.#options.logger.warn({ err: error.message }, 'collector group: hand-over failed; retried next round'))
      }
    }
  }

  /**
   * Leaves the group: releases every lease and the heartbeat, so the others
   * take the partitions at their next round. Stop the reader first: a batch
   * still in hand is refused at its acknowledgement.
   */
  async stop (): Promise<void> {
    this.#stopped = true
    clearTimeout(this.#timer)
    const { redis, keys, member, logger } = this.#options
    await this.#serialized(async () => {
      await this.#releasing(new Map([...this.#held].map(([partition, lease]) => [partition, lease.token])))
      const pipeline = redis.pipeline()
      for (const [partition, lease] of this.#held) pipeline.eval(RELEASE, 1, keys.lease(partition), member, lease.token)
      pipeline.del(keys.collector(member))
      await pipeline.exec()
      const released = [...this.#held.keys()]
      this.counters.released += released.length
      this.#held.clear()
      this.#handingOver.clear()
      this.#gone(released)
    }).catch((error: Error) => logger.warn({ err: error.message }, 'collector group: leases not released at stop; they expire on their own'))
  }

  #schedule (): void {
    if (this.#stopped) return
    const { member, renewMs, settleMs, logger } = this.#options
    const waiting = this.#handingOver.size > 0 || this.#plan.some((owner, partition) => owner === member && !this.#held.has(partition))
    this.#timer = setTimeout(() => {
      this.#serialized(() => this.#round())
        .catch((error: Error) => logger.warn({ err: error.message }, 'collector group: lease round failed; retried'))
        .finally(() => this.#schedule())
    }, waiting ? settleMs : renewMs)
    this.#timer.unref()
  }

  #serialized (work: () => Promise<void>): Promise<void> {
    const next = this.#serial.then(work)
    this.#serial = next.catch(() => undefined)
    return next
  }

  /** One round: renew, beat, see who is alive, hand over and take. */
  async #round (): Promise<void> {
    if (this.#stopped) return
    const { member, partitions, logger } = this.#options
    // Renewals before the beat: our heartbeat never outlives our leases, so
    // whoever sees us gone finds our partitions free at the same round.
    await this.#renew()
    await this.#beat()
    this.#members = await this.#liveMembers()
    this.#plan = assignPartitions(this.#members, partitions)
    for (const partition of this.#held.keys()) {
      const owner = this.#plan[partition]!
      if (owner === member) this.#handingOver.delete(partition)
      else if (!this.#handingOver.has(partition)) {
        this.#handingOver.add(partition)
        logger.info({ partition, to: owner }, 'collector group: handing a partition over once its batch is done')
      }
    }
    await this.#releaseIdle()
    await this.#acquire()
  }

  async #renew (): Promise<void> {
    const { redis, keys, member, ttlMs, logger } = this.#options
    const leases = [...this.#held]
    if (leases.length === 0) return
    const sentAt = performance.now()
    const pipeline = redis.pipeline()
    for (const [partition, lease] of leases) pipeline.eval(RENEW, 1, keys.lease(partition), member, lease.token, ttlMs)
    let results: Array<[Error | null, unknown]> | null
    try {
      results = await pipeline.exec()
    } catch (error) {
      // Redis away: nothing is lost yet; each lease runs out locally (validUntil) as it does in Redis.
      logger.warn({ err: (error as Error).message }, 'collector group: lease renewal failed')
      return
    }
    leases.forEach(([partition, lease], index) => {
      const [error, renewed] = results?.[index] ?? [new Error('no reply'), 0]
      if (error) return
      if (renewed === 1) {
        lease.validUntil = sentAt + ttlMs
        return
      }
      this.#held.delete(partition)
      this.#handingOver.delete(partition)
      this.counters.lost++
      logger.warn({ partition, token: lease.token }, 'collector group: lease lost (expired, and taken or free); the partition is no longer read here')
      this.#gone([partition])
    })
  }

  /** The onReleasing hook; its failure does not keep a lease from being released. */
  async #releasing (leases: ReadonlyMap<number, number>): Promise<void> {
    if (!this.#options.onReleasing || leases.size === 0) return
    try {
      await this.#options.onReleasing(leases)
    } catch (error) {
      this.#options.logger.warn({ partitions: [...leases.keys()], err: (error as Error).message }, 'collector group: work before a release failed; the partition is released all the same')
    }
  }

  #gone (partitions: readonly number[]): void {
    if (partitions.length === 0) return
    try {
      this.#options.onGone?.(partitions)
    } catch (error) {
      this.#options.logger.warn({ partitions, err: (error as Error).message }, 'collector group: work after a partition left failed')
    }
  }

  async #beat (): Promise<void> {
    const { redis, keys, member, ttlMs, logger } = this.#options
    const beat: CollectorBeat = {
      member, instance: this.#instance, startedAt: this.#startedAt, beatAt: new Date().toISOString(), pid: process.pid,
      partitions: [...this.#held.keys()].sort((a, b) => a - b),
    }
    const json = JSON.stringify(beat)
    const previous = await redis.call('SET', keys.collector(member), json, 'PX', ttlMs, 'GET') as string | null
    await redis.hset(keys.collectors, member, json)
    if (previous && this.#beaten && (JSON.parse(previous) as CollectorBeat).instance !== this.#instance) {
      logger.error({ member }, 'collector group: another collector runs under this name; each needs its own cluster.collectorName')
    }
    this.#beaten = true
  }

  async #liveMembers (): Promise<string[]> {
    const { redis, keys, member } = this.#options
    const names = await redis.hkeys(keys.collectors)
    const beats = names.length > 0 ? await redis.mget(names.map((name) => keys.collector(name))) : []
    const live = names.filter((_, index) => beats[index] !== null)
    if (!live.includes(member)) live.push(member)
    return live.sort()
  }

  /** Releases the partitions being handed over that no batch uses. */
  async #releaseIdle (): Promise<void> {
    const { redis, keys, member, logger } = this.#options
    for (const partition of [...this.#handingOver]) {
      if (this.#busy.has(partition)) continue
      const lease = this.#held.get(partition)
      this.#handingOver.delete(partition)
      if (!lease) continue
      // Out of the reader's view first: nothing is read from it while its state is saved.
      this.#held.delete(partition)
      this.counters.released++
      await this.#releasing(new Map([[partition, lease.token]]))
      try {
        await redis.eval(RELEASE, 1, keys.lease(partition), member, lease.token)
      } finally {
        // Not read here any more whether or not Redis heard the release (unreleased, the lease expires).
        this.#gone([partition])
      }
      logger.info({ partition, to: this.#plan[partition] }, 'collector group: partition handed over')
    }
  }

  /** Takes the partitions assigned to this collector that are free or expired. */
  async #acquire (): Promise<void> {
    const { redis, keys, member, ttlMs, logger } = this.#options
    const wanted = this.#plan.flatMap((owner, partition) => owner === member && !this.#held.has(partition) ? [partition] : [])
    if (wanted.length === 0) return
    const sentAt = performance.now()
    const pipeline = redis.pipeline()
    for (const partition of wanted) pipeline.eval(ACQUIRE, 2, keys.lease(partition), keys.leaseToken(partition), member, ttlMs)
    const results = await pipeline.exec()
    const taken: Array<{ partition: number, token: number }> = []
    wanted.forEach((partition, index) => {
      const [error, reply] = results?.[index] ?? [new Error('no reply'), null]
      if (error || typeof reply !== 'number') return
      taken.push({ partition, token: reply })
    })
    if (taken.length > 0 && this.#options.onTaken) {
      try {
        await this.#options.onTaken(new Map(taken.map(({ partition, token }) => [partition, token])))
      } catch (error) {
        logger.warn({ partitions: taken.map((t) => t.partition), err: (error as Error).message }, 'collector group: partitions taken but not ready to read (their state could not be restored); taken again next round')
        return
      }
    }
    for (const { partition, token } of taken) this.#held.set(partition, { token, validUntil: sentAt + ttlMs })
    this.counters.acquired += taken.length
    if (taken.length > 0) logger.info({ taken, members: this.#members.length }, 'collector group: partitions taken')
  }
}

/**
 * Which member reads each partition, from the live members alone:
 * rendezvous hashing with a cap. Every (partition, member) pair gets a
 * score; taken from the highest down, a pair is kept if its partition has
 * no member yet and its member has room — floor(partitions / members)
 * each, and one more for the first (partitions mod members) to get there.
 * Deterministic: every collector that sees the same members computes the
 * same plan; a member joining or leaving moves few other partitions.
 */
export function assignPartitions (members: readonly string[], partitions: number): string[] {
  const sorted = [...new Set(members)].sort()
  if (sorted.length === 0) return []
  const floor = Math.floor(partitions / sorted.length)
  let oneMore = partitions % sorted.length
  const pairs = sorted.flatMap((member) => Array.from({ length: partitions }, (_, partition) => ({ member, partition, score: score(member, partition) })))
  pairs.sort((a, b) => b.score - a.score || a.partition - b.partition || (a.member < b.member ? -1 : 1))
  const counts = new Map<string, number>()
  const plan: string[] = []
  for (const { member, partition } of pairs) {
    if (plan[partition] !== undefined) continue
    const count = counts.get(member) ?? 0
    if (count >= floor) {
      if (count > floor || oneMore === 0) continue
      oneMore--
    }
    counts.set(member, count + 1)
    plan[partition] = member
  }
  return plan
}

/** FNV-1a of member and partition, then murmur3's finalizer: similar names still score apart. */
function score (member: string, partition: number): number {
  const key = `${member}/${partition}`
  let hash = fnv1a(key)
  hash ^= hash >>> 16
  hash = Math.imul(hash, 0x85ebca6b)
  hash ^= hash >>> 13
  hash = Math.imul(hash, 0xc2b2ae35)
  hash ^= hash >>> 16
  return hash >>> 0
}
