/**
 * The broker node's side of the telemetry handoff: each accepted telemetry
 * message and each security event is appended (XADD) to the Redis Stream of
 * its device's partition, and the device's PUBACK waits for Redis' reply.
 * What a device was told is stored is then in Redis, not in one node's
 * memory: a node killed after the PUBACK loses nothing.
 *
 * How durable "in Redis" is depends on Redis' own settings (docs/cluster.md):
 * with `appendonly yes` and `appendfsync always` an entry is on disk before
 * the reply; with `everysec` (the usual choice) a Redis crash may lose the
 * last second; `waitReplicas` adds a WAIT so the reply also waits for that
 * many replicas to hold the entry.
 */
import type { ClusterKeys } from './keys.ts'
import { partitionOf } from './keys.ts'
import type { Redis } from './redis.ts'

export interface HandoffMessage {
  /** The device (or, for a broker event with no device, the node): picks the partition. */
  partitionKey: string
  topic: string
  payload: Buffer
  /** The node that accepted it. */
  node: string
  receivedAtMs: number
}

export interface StreamHandoffOptions {
  redis: Redis
  keys: ClusterKeys
  partitions: number
  /** Replicas that must hold each entry before the PUBACK (Redis WAIT); 0 = none. */
  waitReplicas?: number
  waitTimeoutMs?: number
}

export class StreamHandoff {
  readonly #options: Required<StreamHandoffOptions>
  #appended = 0

  constructor (options: StreamHandoffOptions) {
    this.#options = { waitReplicas: 0, waitTimeoutMs: 1_000, ...options }
  }

  get appended (): number {
    return this.#appended
  }

  /** Resolves with the entry id once Redis holds the entry (and, with waitReplicas, its replicas); rejects otherwise. */
  async append (message: HandoffMessage): Promise<string> {
    const { redis, keys, partitions, waitReplicas, waitTimeoutMs } = this.#options
    const stream = keys.stream(partitionOf(message.partitionKey, partitions))
    const id = await redis.xadd(stream, '*', 't', message.topic, 'p', message.payload, 'n', message.node, 'r', String(message.receivedAtMs))
    if (id === null) throw new Error(`redis refused the entry for ${stream}`)
    if (waitReplicas > 0) {
      const acked = await redis.wait(waitReplicas, waitTimeoutMs)
      if (acked < waitReplicas) throw new Error(`only ${acked} of ${waitReplicas} Redis replicas hold the entry after ${waitTimeoutMs} ms`)
    }
    this.#appended++
    return id
  }
}
