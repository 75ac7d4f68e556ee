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
 */
import type { Logger } from '../shared/logger.ts'
import { COLLECTOR_GROUP, type ClusterKeys } from './keys.ts'
import type { Redis } from './redis.ts'

export interface StreamEntry {
  partition: number
  id: string
  topic: string
  payload: Buffer
  node: string
  receivedAtMs: number
  /** True when read from this consumer's pending list: delivered before, maybe handled. */
  redelivered: boolean
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
  /** Entries per partition per read. */
  count?: number
  blockMs?: number
  baseRetryMs?: number
  maxRetryMs?: number
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

export class StreamReader {
  readonly #options: Required<StreamReaderOptions>
  #stopped = true
  #loop: Promise<void> | undefined
  #wake: (() => void) | undefined
  readonly counters = { read: 0, acked: 0, handleFailures: 0 }

  constructor (options: StreamReaderOptions) {
    this.#options = { count: 500, blockMs: 1_000, baseRetryMs: 250, maxRetryMs: 5_000, ...options }
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

  async #run (): Promise<void> {
    const { partitions, keys } = this.#options
    const streams = Array.from({ length: partitions }, (_, p) => keys.stream(p))
    // First what this consumer read before and never acknowledged (a crash, a kill), then new entries.
    let backlog = true
    let failures = 0
    while (!this.#stopped) {
      let entries: StreamEntry[]
      try {
        entries = await this.#read(streams, backlog)
      } catch (error) {
        if (this.#stopped) break
        failures++
        this.#options.logger.warn({ err: (error as Error).message }, 'collector: reading the cluster streams failed; retrying')
        await this.#sleep(this.#backoff(failures))
        continue
      }
      if (backlog && entries.length === 0) {
        backlog = false
        continue
      }
      if (entries.length === 0) continue
      this.counters.read += entries.length
      // The same batch until it is handled: order per partition holds, nothing is skipped.
      for (let attempt = 1; !this.#stopped || attempt === 1; attempt++) {
        try {
          await this.#options.handle(entries)
          await this.#ack(entries)
          failures = 0
          break
        } catch (error) {
          this.counters.handleFailures++
          if (this.#stopped) break
          this.#options.logger.warn({ err: (error as Error).message, entries: entries.length, attempt }, 'collector: batch not stored; kept in the stream and retried')
          await this.#sleep(this.#backoff(attempt))
        }
      }
    }
  }

  async #read (streams: string[], backlog: boolean): Promise<StreamEntry[]> {
    const { redis, consumer, count, blockMs } = this.#options
    const ids = streams.map(() => backlog ? '0' : '>')
    const args: Array<string | number> = ['GROUP', COLLECTOR_GROUP, consumer, 'COUNT', count]
    if (!backlog) args.push('BLOCK', blockMs)
    // Buffers, not strings: a payload is bytes as the device sent them.
    const reply = await redis.callBuffer('XREADGROUP', [...args, 'STREAMS', ...streams, ...ids]) as Array<[Buffer, Array<[Buffer, Buffer[] | null]>]> | null
    if (!reply) return []
    const entries: StreamEntry[] = []
    for (const [streamName, items] of reply) {
      const partition = Number(streamName.toString().slice(streamName.toString().lastIndexOf(':') + 1))
      for (const [idBuffer, fields] of items) {
        // An entry deleted (XDEL, MAXLEN) while pending comes back with no fields: acknowledge it, there is nothing to store.
        const map = new Map<string, Buffer>()
        for (let i = 0; fields && i + 1 < fields.length; i += 2) map.set(fields[i]!.toString(), fields[i + 1]!)
        entries.push({
          partition, id: idBuffer.toString(), topic: map.get('t')?.toString() ?? '', payload: map.get('p') ?? Buffer.alloc(0),
          node: map.get('n')?.toString() ?? '', receivedAtMs: Number(map.get('r')?.toString() ?? 0), redelivered: backlog,
        })
      }
    }
    return entries
  }

  async #ack (entries: StreamEntry[]): Promise<void> {
    const { redis, keys } = this.#options
    const byPartition = new Map<number, string[]>()
    for (const entry of entries) {
      const ids = byPartition.get(entry.partition) ?? []
      ids.push(entry.id)
      byPartition.set(entry.partition, ids)
    }
    const pipeline = redis.pipeline()
    for (const [partition, ids] of byPartition) pipeline.xack(keys.stream(partition), COLLECTOR_GROUP, ...ids)
    const results = await pipeline.exec()
    for (const [error] of results ?? []) if (error) throw error
    this.counters.acked += entries.length
  }

  /**
   * Deletes what the group has acknowledged: entries older than the oldest
   * pending one (or than the last one delivered, when none is pending). The
   * stream keeps only what some collector still owes the store.
   */
  async trimAcknowledged (): Promise<number> {
    const { redis, keys, partitions } = this.#options
    let trimmed = 0
    for (let partition = 0; partition < partitions; partition++) {
      const stream = keys.stream(partition)
      const summary = await redis.xpending(stream, COLLECTOR_GROUP) as [number, string | null, string | null, unknown]
      let floor = summary[1]
      if (!floor) {
        const groups = await redis.xinfo('GROUPS', stream) as Array<Array<string | number | null>>
        const group = groups.map((g) => fieldsOf(g)).find((g) => g.get('name') === COLLECTOR_GROUP)
        const last = group?.get('last-delivered-id')
        // Everything up to and including the last delivered entry is acknowledged: keep from the next id on.
        floor = typeof last === 'string' && last !== '0-0' ? nextId(last) : null
      }
      if (floor) trimmed += await redis.xtrim(stream, 'MINID', floor)
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

/** The stream id right after `id` (ms-seq). */
function nextId (id: string): string {
  const [ms, seq] = id.split('-') as [string, string]
  return `${ms}-${BigInt(seq) + 1n}`
}
