/**
 * The collector's side of the handoff: reads the partitions' streams in the
 * `collectors` consumer group and hands each batch to `handle`; only when
 * `handle` resolves (the store confirmed the batch) are the entries
 * acknowledged (XACK). Until then they stay in the group's pending list,
 * so the stream itself is the collector's spool: a collector killed
 * mid-batch reads its pending entries again at its next start.
 *
 * A batch `handle` refuses is offered again after a back-off and nothing
 * newer is read meanwhile: the backlog waits in Redis, not in memory.
 *
 * In a group of collectors (`leases`), the reader reads only the partitions
 * its collector holds the lease of, and:
 *  - on taking a partition, claims every entry pending on it (XAUTOCLAIM,
 *    from whichever consumer: the previous holder's unacknowledged batch)
 *    and handles them, marked redelivered, before reading new ones;
 *  - every `sweepMs`, claims again what is pending on its partitions: a
 *    holder that was paused past its lease may have had a blocking read
 *    served after it lost the partition, leaving entries in its own pending
 *    list that nobody would read;
 *  - fences with the lease's token (cluster/partition-leases.ts): a batch is
 *    handed to `handle` only if Redis still names the token it was read
 *    under (else it is dropped: neither handled nor acknowledged; the new
 *    holder claims it), and acknowledged only by the fenced XACK, atomic
 *    with the token's check. Between the first check and the write inside
 *    `handle` there is a gap — `currentToken` and `leases.check` let a
 *    writer check again right before it writes; the store's own fence comes
 *    with the PostgreSQL step.
 * Reads block for `blockMs` (500 ms) at most, and only on partitions whose
 * lease is sure to outlast the read, so a lost partition is not read for
 * long and a newly held one is read within half a second.
 */
import { performance } from 'node:perf_hooks'
import type { Logger } from '../shared/logger.ts'
import { COLLECTOR_GROUP, type ClusterKeys } from './keys.ts'
import type { PartitionLeases } from './partition-leases.ts'
import type { Redis } from './redis.ts'

export interface StreamEntry {
  partition: number
  id: string
  topic: string
  payload: Buffer
  node: string
  receivedAtMs: number
  /** True when read from a pending list: delivered before, maybe handled. */
  redelivered: boolean
  /** The lease token the entry was read under (a reader with leases), for a writer to check; undefined without leases. */
  token: number | undefined
}

export interface StreamReaderOptions {
  /** A connection of its own: XREADGROUP BLOCK holds it. */
  redis: Redis
  keys: ClusterKeys
  partitions: number
  /** This collector's consumer name in the group; its pending entries are its own. */
  consumer: string
  handle: (entries: StreamEntry[]) => Promise<void>
  logger: Logger
  /**
   * The collector group's leases (started by the caller, stopped after the
   * reader): read only the partitions held, fenced by their tokens. Without
   * them, every partition, as the group's only collector.
   */
  leases?: PartitionLeases
  /** Entries per partition per read. */
  count?: number
  blockMs?: number
  baseRetryMs?: number
  maxRetryMs?: number
  /** With leases: how often the held partitions' pending entries are claimed again (a stale holder's late read). */
  sweepMs?: number
}

export interface PartitionLag {
  partition: number
  stream: string
  length: number
  /** Entries not yet read by the group (Redis 7 `lag`; null when Redis cannot tell). */
  lag: number | null
  /** Read but not acknowledged. */
  pending: number
  consumers: number
}

/** A read is issued only on a partition whose lease outlasts it by this much more than the block. */
const LEASE_MARGIN_MS = 500

type RawEntry = [Buffer, Buffer[] | null] | null

/**
 * Trim. KEYS: stream. ARGV: group. XTRIM MINID to the group's oldest
 * pending entry, or, none pending, to the id right after the last one
 * delivered (everything up to it is acknowledged); returns the count
 * trimmed (0 when the stream or the group does not exist yet).
 */
const TRIM_ACKNOWLEDGED = `
local pending = redis.pcall('XPENDING', KEYS[1], ARGV[1])
if pending.err then return 0 end
local floor = pending[2]
if not floor then
  for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
    local name, last
    for i = 1, #group, 2 do
      if group[i] == 'name' then name = group[i + 1] elseif group[i] == 'last-delivered-id' then last = group[i + 1] end
    end
    if name == ARGV[1] and last and last ~= '0-0' then
      local ms, seq = string.match(last, '^(%d+)-(%d+)$')
      floor = ms .. '-' .. string.format('%d', tonumber(seq) + 1)
    end
  end
end
if not floor then return 0 end
return redis.call('XTRIM', KEYS[1], 'MINID', floor)`

export class StreamReader {
  readonly #options: Required<Omit<StreamReaderOptions, 'leases'>> & { leases: PartitionLeases | undefined }
  #stopped = true
  #loop: Promise<void> | undefined
  #wake: (() => void) | undefined
  /** Partition → the token under which its pending entries were claimed (alone: read back); absent: to do. */
  readonly #drained = new Map<number, number | undefined>()
  /** Partition → where its XAUTOCLAIM scan stands, for the token it was started under. */
  readonly #cursors = new Map<number, { token: number, cursor: string }>()
  readonly counters = { read: 0, acked: 0, handleFailures: 0, claimed: 0, fenced: 0 }

  constructor (options: StreamReaderOptions) {
    this.#options = { count: 500, blockMs: 500, baseRetryMs: 250, maxRetryMs: 5_000, sweepMs: 5_000, leases: undefined, ...options }
  }

  async start (): Promise<void> {
    await ensureGroups(this.#options.redis, this.#options.keys, this.#options.partitions)
    this.#stopped = false
    this.#loop = this.#run()
  }

  /** Stops reading; a batch being handled finishes (and is acknowledged) first. */
  async stop (): Promise<void> {
    this.#stopped = true
    this.#wake?.()
    // Ends the blocking read at once; the reader's connection is its own.
    this.#options.redis.disconnect()
    await this.#loop
  }

  /**
   * The token of the partition's lease as this collector holds it now
   * (undefined: not held, or no leases). A writer compares it with the
   * entry's `token`, or asks `leases.check` for Redis' word, right before
   * writing.
   */
  currentToken (partition: number): number | undefined {
    return this.#options.leases?.token(partition)
  }

  async #run (): Promise<void> {
    const { leases, sweepMs } = this.#options
    let nextSweep = performance.now() + sweepMs
    let failures = 0
    while (!this.#stopped) {
      const view = this.#view()
      if (view.size === 0) {
        // Nothing held (yet): the leases' next round may give us some.
        await this.#sleep(this.#options.blockMs)
        continue
      }
      for (const [partition, token] of this.#drained) if (view.get(partition) !== token) this.#drained.delete(partition)
      if (leases && performance.now() >= nextSweep) {
        this.#drained.clear()
        nextSweep = performance.now() + sweepMs
      }
      // First what is pending (a crash, a kill, a previous holder), partition by partition, then new entries.
      const backlog = [...view].find(([partition]) => !this.#drained.has(partition))
      try {
        if (backlog) {
          const [partition, token] = backlog
          await this.#use([partition], async () => {
            const { entries, done } = await this.#readBacklog(partition, token)
            failures = 0
            if (entries.length > 0) await this.#process(entries)
            if (done) this.#drained.set(partition, token)
          })
        } else {
          await this.#use(view.keys(), async () => {
            const entries = await this.#readNew(view)
            failures = 0
            if (entries.length > 0) await this.#process(entries)
          })
        }
      } catch (error) {
        if (this.#stopped) break
        failures++
        this.#options.logger.warn({ err: (error as Error).message }, 'collector: reading the cluster streams failed; retrying')
        await this.#sleep(this.#backoff(failures))
      }
    }
  }

  /** The partitions to read now and their tokens: the leases held (sure to outlast a read), or, alone, all of them. */
  #view (): Map<number, number | undefined> {
    const { leases, partitions, blockMs } = this.#options
    if (leases) return leases.held(blockMs + LEASE_MARGIN_MS)
    return new Map(Array.from({ length: partitions }, (_, partition) => [partition, undefined]))
  }

  /** Holds the partitions against a hand-over while `work` reads and handles them. */
  async #use (partitions: Iterable<number>, work: () => Promise<void>): Promise<void> {
    const { leases } = this.#options
    if (leases) await leases.inUse(partitions, work)
    else await work()
  }

  /**
   * The next entries pending on a partition. With a lease: claimed from
   * whichever consumer holds them (XAUTOCLAIM, idle time 0 — the lease, not
   * idleness, says the previous holder is done; a paused one is fenced).
   * Alone: this consumer's own pending list read again.
   */
  async #readBacklog (partition: number, token: number | undefined): Promise<{ entries: StreamEntry[], done: boolean }> {
    const { redis, keys, consumer, count, logger } = this.#options
    const stream = keys.stream(partition)
    if (token === undefined) {
      const reply = await redis.callBuffer('XREADGROUP', ['GROUP', COLLECTOR_GROUP, consumer, 'COUNT', count, 'STREAMS', stream, '0']) as Array<[Buffer, RawEntry[]]> | null
      const entries = parseEntries(partition, reply?.[0]?.[1] ?? [], true, undefined)
      return { entries, done: entries.length === 0 }
    }
    const scan = this.#cursors.get(partition)
    const from = scan?.token === token ? scan.cursor : '0-0'
    const reply = await redis.callBuffer('XAUTOCLAIM', [stream, COLLECTOR_GROUP, consumer, 0, from, 'COUNT', count]) as [Buffer, RawEntry[], Buffer[]?]
    const next = reply[0].toString()
    const entries = parseEntries(partition, reply[1], true, token)
    if (next === '0-0') this.#cursors.delete(partition)
    else this.#cursors.set(partition, { token, cursor: next })
    if (entries.length > 0) {
      this.counters.claimed += entries.length
      logger.info({ partition, token, entries: entries.length }, 'collector: claimed entries pending on a partition (a previous holder\'s batch, or a late read); handling them first')
    }
    return { entries, done: next === '0-0' }
  }

  async #readNew (view: Map<number, number | undefined>): Promise<StreamEntry[]> {
    const { redis, keys, consumer, count, blockMs } = this.#options
    const partitions = [...view.keys()]
    const streams = partitions.map((partition) => keys.stream(partition))
    // Buffers, not strings: a payload is bytes as the device sent them.
    const reply = await redis.callBuffer('XREADGROUP', ['GROUP', COLLECTOR_GROUP, consumer, 'COUNT', count, 'BLOCK', blockMs,
      'STREAMS', ...streams, ...streams.map(() => '>')]) as Array<[Buffer, RawEntry[]]> | null
    if (!reply) return []
    return reply.flatMap(([streamName, items]) => {
      const name = streamName.toString()
      const partition = Number(name.slice(name.lastIndexOf(':') + 1))
      return parseEntries(partition, items, false, view.get(partition))
    })
  }

  /** The same batch until it is handled: order per partition holds, nothing is skipped — unless its lease is lost, and then it is dropped. */
  async #process (entries: StreamEntry[]): Promise<void> {
    this.counters.read += entries.length
    let batch = entries
    for (let attempt = 1; attempt === 1 || !this.#stopped; attempt++) {
      try {
        batch = await this.#fence(batch)
        if (batch.length === 0) return
        await this.#options.handle(batch)
        await this.#ack(batch)
        return
      } catch (error) {
        this.counters.handleFailures++
        if (this.#stopped) return
        this.#options.logger.warn({ err: (error as Error).message, entries: batch.length, attempt }, 'collector: batch not stored; kept in the stream and retried')
        await this.#sleep(this.#backoff(attempt))
      }
    }
  }

  /**
   * The entries whose partition's lease is still the one they were read
   * under — here, then in Redis (one round trip). The others are dropped:
   * not handled, not acknowledged; the partition's new holder claims them.
   */
  async #fence (batch: StreamEntry[]): Promise<StreamEntry[]> {
    const { leases, logger } = this.#options
    if (!leases) return batch
    const tokens = new Map<number, number>()
    for (const entry of batch) if (entry.token !== undefined && leases.token(entry.partition) === entry.token) tokens.set(entry.partition, entry.token)
    const valid = await leases.checkAll(tokens)
    const kept = batch.filter((entry) => valid.has(entry.partition))
    if (kept.length < batch.length) {
      const lost = [...new Set(batch.filter((entry) => !valid.has(entry.partition)).map((entry) => entry.partition))]
      this.counters.fenced += batch.length - kept.length
      logger.warn({ partitions: lost, entries: batch.length - kept.length }, 'collector: lease lost with a batch in hand; its entries are dropped (not handled, not acknowledged) for the new holder to claim')
    }
    return kept
  }

  async #ack (entries: StreamEntry[]): Promise<void> {
    const { redis, keys, leases, logger } = this.#options
    const byPartition = new Map<number, { token: number | undefined, ids: string[] }>()
    for (const entry of entries) {
      const group = byPartition.get(entry.partition) ?? { token: entry.token, ids: [] }
      group.ids.push(entry.id)
      byPartition.set(entry.partition, group)
    }
    if (leases) {
      // The token's check and the XACK in one script: a holder that lost the lease while handling cannot acknowledge for the new one.
      for (const [partition, { token, ids }] of byPartition) {
        if (token !== undefined && await leases.ack(partition, token, ids) !== undefined) {
          this.counters.acked += ids.length
          continue
        }
        this.counters.fenced += ids.length
        logger.warn({ partition, token, entries: ids.length }, 'collector: acknowledgement refused, the lease changed hands while the batch was handled; the new holder handles these entries again (the store rewrites the same points)')
      }
      return
    }
    const pipeline = redis.pipeline()
    for (const [partition, { ids }] of byPartition) pipeline.xack(keys.stream(partition), COLLECTOR_GROUP, ...ids)
    const results = await pipeline.exec()
    for (const [error] of results ?? []) if (error) throw error
    this.counters.acked += entries.length
  }

  /**
   * Deletes what the group has acknowledged: entries older than the oldest
   * pending one (or than the last one delivered, when none is pending). The
   * stream keeps only what some collector still owes the store. One script
   * per partition: a read by another collector between looking and trimming
   * cannot have its entries trimmed while they are pending.
   */
  async trimAcknowledged (): Promise<number> {
    const { redis, keys, partitions } = this.#options
    let trimmed = 0
    for (let partition = 0; partition < partitions; partition++) {
      trimmed += await redis.eval(TRIM_ACKNOWLEDGED, 1, keys.stream(partition), COLLECTOR_GROUP) as number
    }
    return trimmed
  }

  #backoff (attempt: number): number {
    const ceiling = Math.min(this.#options.maxRetryMs, this.#options.baseRetryMs * 2 ** (attempt - 1))
    return ceiling / 2 + Math.random() * ceiling / 2
  }

  async #sleep (ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms)
      this.#wake = () => { clearTimeout(timer); resolve() }
    })
    this.#wake = undefined
  }
}

/** Stream entries from a reply's items; an entry deleted (XDEL, MAXLEN) while pending comes back with no fields: it is acknowledged, there is nothing to store. */
function parseEntries (partition: number, items: RawEntry[], redelivered: boolean, token: number | undefined): StreamEntry[] {
  const entries: StreamEntry[] = []
  for (const item of items) {
    if (!item) continue
    const [idBuffer, fields] = item
    const map = new Map<string, Buffer>()
    for (let i = 0; fields && i + 1 < fields.length; i += 2) map.set(fields[i]!.toString(), fields[i + 1]!)
    entries.push({
      partition, id: idBuffer.toString(), topic: map.get('t')?.toString() ?? '', payload: map.get('p') ?? Buffer.alloc(0),
      node: map.get('n')?.toString() ?? '', receivedAtMs: Number(map.get('r')?.toString() ?? 0), redelivered, token,
    })
  }
  return entries
}

/** Creates the consumer group on every partition (and the stream if none yet); an existing group is kept. */
export async function ensureGroups (redis: Redis, keys: ClusterKeys, partitions: number): Promise<void> {
  for (let partition = 0; partition < partitions; partition++) {
    try {
      await redis.xgroup('CREATE', keys.stream(partition), COLLECTOR_GROUP, '0', 'MKSTREAM')
    } catch (error) {
      if (!(error as Error).message.includes('BUSYGROUP')) throw error
    }
  }
}

/** Length, unread lag and pending entries of every partition, for `cluster status` and /metrics. */
export async function partitionLag (redis: Redis, keys: ClusterKeys, partitions: number): Promise<PartitionLag[]> {
  const result: PartitionLag[] = []
  for (let partition = 0; partition < partitions; partition++) {
    const stream = keys.stream(partition)
    const length = await redis.xlen(stream)
    let lag: number | null = null
    let pending = 0
    let consumers = 0
    try {
      const groups = await redis.xinfo('GROUPS', stream) as Array<Array<string | number | null>>
      for (const group of groups) {
        const fields = fieldsOf(group)
        if (fields.get('name') !== COLLECTOR_GROUP) continue
        pending = Number(fields.get('pending') ?? 0)
        consumers = Number(fields.get('consumers') ?? 0)
        const reported = fields.get('lag')
        lag = reported === null || reported === undefined ? null : Number(reported)
      }
    } catch (error) {
      if (!(error as Error).message.includes('no such key')) throw error
    }
    result.push({ partition, stream, length, lag, pending, consumers })
  }
  return result
}

function fieldsOf (flat: Array<string | number | null>): Map<string, string | number | null> {
  const fields = new Map<string, string | number | null>()
  for (let i = 0; i + 1 < flat.length; i += 2) fields.set(String(flat[i]), flat[i + 1] ?? null)
  return fields
}
