/**
 * The cluster room: what broker nodes and collectors share through Redis —
 * node heartbeats, the telemetry streams and the collectors' leases on
 * them, the CRL, suppliers' grants, quarantines, and which node holds
 * each identity's session.
 * No consensus of our own: Redis is the one place of truth, and every piece
 * here is a thin, tested use of it.
 */
export { clusterKeys, COLLECTOR_GROUP, DEFAULT_PARTITIONS, DEFAULT_PREFIX, NODE_ID, partitionOf, type ClusterKeys } from './keys.ts'
export { connectRedis, redactRedisUrl, type Redis } from './redis.ts'
export { DEFAULT_HEARTBEAT_MS, DEFAULT_NODE_TTL_MS, listNodes, NodeRegistry, type NodeBeat, type NodeStatus, type RoleCounts } from './node-registry.ts'
export { StreamHandoff, type HandoffMessage } from './stream-handoff.ts'
export { ensureGroups, partitionLag, StreamReader, type PartitionLag, type StreamEntry } from './stream-reader.ts'
export {
  assignPartitions, DEFAULT_LEASE_RENEW_MS, DEFAULT_LEASE_TTL_MS, PartitionLeases, type CollectorBeat,
} from './partition-leases.ts'
export { DetectionSnapshots, type DetectionSnapshot } from './detection-snapshots.ts'
export { CrlFollower, publishCrl } from './crl-channel.ts'
export { publishSupplierGrants, SUPPLIER_GRANTS_POLL_MS, SupplierGrantFollower } from './supplier-grants.ts'
export { ControlChannel, type ControlEnvelope } from './control-channel.ts'
export { SessionDirectory, type SessionRecord } from './session-directory.ts'
export { clusterStatus, type ClusterStatus } from './status.ts'
export { CLUSTER_ENV, clusterConfigSchema, nodeIdSchema, redisUrlSchema, type ClusterConfig } from './config.ts'
