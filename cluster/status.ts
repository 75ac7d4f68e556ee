/** What `placeguard cluster status` shows: the nodes, their connections, the partitions and their lag. */
import { type ClusterKeys } from './keys.ts'
import { listNodes, type NodeStatus } from './node-registry.ts'
import type { Redis } from './redis.ts'
import { partitionLag, type PartitionLag } from './stream-reader.ts'

export interface ClusterStatus {
  nodes: NodeStatus[]
  partitions: PartitionLag[]
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
  return { nodes, partitions: await partitionLag(redis, keys, partitions), connections, quarantined: await redis.hlen(keys.quarantine) }
}
