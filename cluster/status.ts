/** What `placeguard cluster status` shows: the nodes, the collectors, the partitions with their holder and lag. */
import type { CollectorBeat } from './partition-leases.ts'
import { type ClusterKeys } from './keys.ts'
import { listNodes, type NodeStatus } from './node-registry.ts'
import type { Redis } from './redis.ts'
import { partitionLag, type PartitionLag } from './stream-reader.ts'

export interface CollectorStatus extends CollectorBeat {
  alive: boolean
}

export interface PartitionStatus extends PartitionLag {
  /** The collector whose lease covers it now, and the lease's fencing token; null when nobody holds it. */
  holder: string | null
  token: number | null
}

export interface ClusterStatus {
  nodes: NodeStatus[]
  collectors: CollectorStatus[]
  partitions: PartitionStatus[]
  /** Sessions on live nodes, by role. */
  connections: Record<string, number>
  quarantined: number
}

export async function clusterStatus (redis: Redis, keys: ClusterKeys, partitions: number): Promise<ClusterStatus> {
  const nodes = await listNodes(redis, keys)
  const connections: Record<string, number> = {}
  for (const node of nodes.filter((n) => n.alive)) {
    for (const [role, count] of Object.entries(node.connections)) connections[role] = (connections[role] ?? 0) + count
  }
  const lags = await partitionLag(redis, keys, partitions)
  const leases = await Promise.all(lags.map(async (lag) => await redis.hmget(keys.lease(lag.partition), 'owner', 'token')))
  return {
    nodes,
    collectors: await listCollectors(redis, keys),
    partitions: lags.map((lag, index) => ({ ...lag, holder: leases[index]![0] ?? null, token: leases[index]![1] === null ? null : Number(leases[index]![1]) })),
    connections,
    quarantined: await redis.hlen(keys.quarantine),
  }
}

/** Every collector ever seen in the group: alive while its heartbeat key lives, with its last beat. */
async function listCollectors (redis: Redis, keys: ClusterKeys): Promise<CollectorStatus[]> {
  const all = await redis.hgetall(keys.collectors)
  const names = Object.keys(all).sort()
  if (names.length === 0) return []
  const live = await redis.mget(names.map((name) => keys.collector(name)))
  return names.map((name, index) => ({ ...JSON.parse(live[index] ?? all[name]!) as CollectorBeat, alive: live[index] !== null }))
}
