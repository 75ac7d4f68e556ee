/**
 * Each broker node registers itself in Redis and beats every
 * `heartbeatMs`: a hash that expires after `ttlMs`, so a node killed with
 * SIGKILL (or cut off) disappears from the live set on its own, with no
 * election and no home-made consensus. The last beat of every node ever
 * seen is kept beside it, so `placeguard cluster status` can show a dead
 * node as dead instead of forgetting it.
 *
 * The same beats carry each node's connection counts: the cluster-wide
 * connection limits are enforced on this snapshot (at most one beat old,
 * plus what this node knows live).
 */
import { systemClock, type Clock } from '../shared/clock.ts'
import type { Logger } from '../shared/logger.ts'
import type { ClusterKeys } from './keys.ts'
import type { Redis } from './redis.ts'

export const DEFAULT_HEARTBEAT_MS = 2_000
export const DEFAULT_NODE_TTL_MS = 10_000

/** Connections a node holds, by role. */
export type RoleCounts = Record<string, number>

export interface NodeBeat {
  nodeId: string
  startedAt: string
  beatAt: string
  /** Where devices reach it and where its /metrics are, as the node was told. */
  mqtt: string
  metrics: string | undefined
  pid: number
  connections: RoleCounts
}

export interface NodeStatus extends NodeBeat {
  alive: boolean
}

export interface NodeRegistryOptions {
  redis: Redis
  keys: ClusterKeys
  nodeId: string
  mqtt: string
  metrics?: string
  /** This node's live connections by role, read at each beat. */
  connections: () => RoleCounts
  logger: Logger
  clock?: Clock
  heartbeatMs?: number
  ttlMs?: number
}

export class NodeRegistry {
  readonly #options: Required<Omit<NodeRegistryOptions, 'metrics'>> & { metrics: string | undefined }
  readonly #startedAt: string
  #timer: NodeJS.Timeout | undefined
  /** Other live nodes' connection counts at the last beat. */
  #others: RoleCounts = {}
  #beating: Promise<void> | undefined
  /** When Redis last took this node's heartbeat (ms, the injected clock). */
  #lastBeatAt: number | undefined

  constructor (options: NodeRegistryOptions) {
    this.#options = { clock: systemClock, heartbeatMs: DEFAULT_HEARTBEAT_MS, ttlMs: DEFAULT_NODE_TTL_MS, metrics: undefined, ...options }
    this.#startedAt = new Date(this.#options.clock.now()).toISOString()
  }

  get nodeId (): string {
    return this.#options.nodeId
  }

  /** How long ago Redis last took this node's heartbeat; undefined before the first. Past the ttl, the cluster sees this node as dead. */
  heartbeatAgeMs (): number | undefined {
    return this.#lastBeatAt === undefined ? undefined : this.#options.clock.now() - this.#lastBeatAt
  }

  get ttlMs (): number {
    return this.#options.ttlMs
  }

  /** Connections held by the other live nodes, by role, as of the last beat. */
  othersConnections (role?: string): number {
    if (role !== undefined) return this.#others[role] ?? 0
    return Object.values(this.#others).reduce((sum, count) => sum + count, 0)
  }

  /** Registers the node (first beat, awaited) and keeps beating. */
  async start (): Promise<void> {
    await this.beat()
    this.#timer = setInterval(() => { this.#beating ??= this.beat().finally(() => { this.#beating = undefined }) }, this.#options.heartbeatMs)
    this.#timer.unref()
  }

  /** One heartbeat: this node's record refreshed, the others' counts read. */
  async beat (): Promise<void> {
    const { redis, keys, nodeId, clock, ttlMs, logger } = this.#options
    const beat: NodeBeat = {
      nodeId, startedAt: this.#startedAt, beatAt: new Date(clock.now()).toISOString(),
      mqtt: this.#options.mqtt, metrics: this.#options.metrics, pid: process.pid, connections: this.#options.connections(),
    }
    const json = JSON.stringify(beat)
    try {
      await redis.multi().set(keys.node(nodeId), json, 'PX', ttlMs).hset(keys.nodes, nodeId, json).exec()
      this.#lastBeatAt = clock.now()
      this.#others = sumConnections((await liveBeats(redis, keys)).filter((other) => other.nodeId !== nodeId))
    } catch (error) {
      // A missed beat is not fatal: the record expires only after ttlMs; the next beat retries.
      logger.warn({ err: (error as Error).message, node: nodeId }, 'cluster heartbeat failed')
    }
  }

  /** Leaves the cluster at a graceful stop: the node is shown as gone at once. */
  async stop (): Promise<void> {
    clearInterval(this.#timer)
    await this.#beating
    const { redis, keys, nodeId } = this.#options
    await redis.del(keys.node(nodeId)).catch(() => undefined)
  }
}

function sumConnections (beats: NodeBeat[]): RoleCounts {
  const sum: RoleCounts = {}
  for (const beat of beats) {
    for (const [role, count] of Object.entries(beat.connections)) sum[role] = (sum[role] ?? 0) + count
  }
  return sum
}

async function liveBeats (redis: Redis, keys: ClusterKeys): Promise<NodeBeat[]> {
  const ids = await redis.hkeys(keys.nodes)
  if (ids.length === 0) return []
  const values = await redis.mget(ids.map((id) => keys.node(id)))
  return values.flatMap((value) => value ? [JSON.parse(value) as NodeBeat] : [])
}

/** Every node ever seen: alive (its record has not expired) or not, with its last beat. */
export async function listNodes (redis: Redis, keys: ClusterKeys): Promise<NodeStatus[]> {
  const all = await redis.hgetall(keys.nodes)
  const ids = Object.keys(all).sort()
  if (ids.length === 0) return []
  const live = await redis.mget(ids.map((id) => keys.node(id)))
  return ids.map((id, index) => {
    const current = live[index]
    return { ...JSON.parse(current ?? all[id]!) as NodeBeat, alive: current !== null }
  })
}

/** Whether a node is alive now (its heartbeat record exists). */
export async function nodeAlive (redis: Redis, keys: ClusterKeys, nodeId: string): Promise<boolean> {
  return await redis.exists(keys.node(nodeId)) === 1
}
