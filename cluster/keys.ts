/**
 * Where the cluster keeps things in Redis. One prefix per PlaceGuard
 * deployment, so a Redis shared with other software (or a second fleet)
 * stays apart; every key and channel below starts with it.
 */

import { fnv1a } from '../shared/fnv1a.ts'

/** Telemetry partitions by default: enough for a handful of collectors to share (issue #15), few enough to read in one XREADGROUP. */
export const DEFAULT_PARTITIONS = 16
/** The consumer group every collector reads the partitions in. */
export const COLLECTOR_GROUP = 'collectors'
export const DEFAULT_PREFIX = 'placeguard'

export interface ClusterKeys {
  prefix: string
  /** Stream of telemetry and security events for one partition. */
  stream: (partition: number) => string
  /** Hash of one node's heartbeat; expires when the node stops beating. */
  node: (nodeId: string) => string
  /** Hash node id → last heartbeat (JSON): the nodes ever seen, alive or not. */
  nodes: string
  /** The fleet CA's current CRL (PEM), and the channel that announces a new one. */
  crl: string
  crlChannel: string
  /** Hash supplier id → its grant (JSON: kinds, sites, windows), and the channel that announces a change (supplier-grants.ts). */
  suppliers: string
  suppliersChannel: string
  /** Hash device id → quarantine entry (JSON), and the channel of quarantine and lift commands. */
  quarantine: string
  controlChannel: string
  /** Points the store refused for good (a dead-letter stream), kept with the store's reason. */
  rejected: string
  /** The live session of one identity: which node holds it. */
  owner: (clientId: string) => string
  /** Hash { owner, token } of the collector reading one partition; expires unless renewed. */
  lease: (partition: number) => string
  /** One partition's fencing-token counter: INCR each time its lease changes hands, never reset. */
  leaseToken: (partition: number) => string
  /** Hash { token, state, savedAt }: detection's learned state of one partition's devices, written under its lease token. */
  detection: (partition: number) => string
  /** List of JSON: detection's state of the partition's devices that changed since that snapshot, one entry per acknowledged batch, oldest first. */
  detectionChanges: (partition: number) => string
  /** One collector's heartbeat in the group; expires when it stops beating. */
  collector: (name: string) => string
  /** Hash collector name → last heartbeat (JSON): the collectors ever seen, alive or not. */
  collectors: string
}

export function clusterKeys (prefix = DEFAULT_PREFIX): ClusterKeys {
  if (!/^[a-z0-9][a-z0-9:_-]{0,31}$/.test(prefix)) throw new Error(`cluster key prefix "${prefix}" must be 1–32 of a-z 0-9 : _ -`)
  return {
    prefix,
    stream: (partition) => `${prefix}:stream:${partition}`,
    node: (nodeId) => `${prefix}:node:${nodeId}`,
    nodes: `${prefix}:nodes`,
    crl: `${prefix}:crl`,
    crlChannel: `${prefix}:crl:changed`,
    suppliers: `${prefix}:suppliers`,
    suppliersChannel: `${prefix}:suppliers:changed`,
    quarantine: `${prefix}:quarantine`,
    controlChannel: `${prefix}:control`,
    rejected: `${prefix}:rejected`,
    owner: (clientId) => `${prefix}:owner:${clientId}`,
    lease: (partition) => `${prefix}:lease:${partition}`,
    leaseToken: (partition) => `${prefix}:lease-token:${partition}`,
    detection: (partition) => `${prefix}:detection:${partition}`,
    detectionChanges: (partition) => `${prefix}:detection:${partition}:changes`,
    collector: (name) => `${prefix}:collector:${name}`,
    collectors: `${prefix}:collectors`,
  }
}

/**
 * The partition a device's messages go to: FNV-1a of its id. Stable across
 * nodes and restarts, so one device's messages stay in one stream, in order.
 */
export function partitionOf (key: string, partitions: number): number {
  return fnv1a(key) % partitions
}

/** Node ids name keys and appear in events: the same alphabet as device ids. */
export const NODE_ID = /^[a-z0-9][a-z0-9-]{0,62}$/
