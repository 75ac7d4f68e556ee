/**
 * The cluster's section of the configuration (`cluster`), composed in
 * app/config.ts with the top-level `redisUrl` and `nodeId`. Without
 * `redisUrl` none of it applies: PlaceGuard is one process.
 */
import { z } from 'zod'
import { positive } from '../shared/config-fields.ts'
import { DEFAULT_PARTITIONS, NODE_ID } from './keys.ts'

export const DEFAULT_COLLECTOR_NAME = 'collector'

// A password with / # or ? unencoded breaks the URL, and ioredis then quietly
// connects to localhost without a password: refuse it here, by name.
export const redisUrlSchema = z.string().regex(/^rediss?:\/\/[^\s]+$/, 'must be a redis:// or rediss:// URL')
  .refine((url) => URL.canParse(url) && new URL(url).hostname !== '', 'is not a valid URL: percent-encode / # ? in the password (or use a hex one: openssl rand -hex 32)')
  .optional()
  .describe('Redis of the cluster (sessions, routing, telemetry streams, CRL, quarantines); absent: one process, no cluster')

export const nodeIdSchema = z.string().regex(NODE_ID, 'must be 1–63 of a-z 0-9 - (starting with a letter or digit)').optional()
  .describe('this broker node\'s name in the cluster (required with redisUrl for `placeguard broker`)')

export const clusterConfigSchema = z.strictObject({
  partitions: positive.max(1024).default(DEFAULT_PARTITIONS).describe('telemetry stream partitions; the same on every node and collector, fixed once data flows'),
  waitReplicas: z.coerce.number().int().min(0).default(0).describe('Redis replicas that must hold each telemetry entry before the device\'s PUBACK (Redis WAIT); 0 = the primary alone'),
  collectorName: z.string().regex(NODE_ID, 'must be 1–63 of a-z 0-9 - (starting with a letter or digit)').default(DEFAULT_COLLECTOR_NAME)
    .describe('this collector\'s name in the collector group (its leases and its consumer in the streams); unique per collector, the same across its restarts'),
}).default({ partitions: DEFAULT_PARTITIONS, waitReplicas: 0, collectorName: DEFAULT_COLLECTOR_NAME })

/**
 * `cluster` keys the environment can set, by variable: a collector's name
 * differs per collector while the rest of its file is shared, so a
 * deployment (docker-compose's collector-cluster-N) gives it per process.
 */
export const CLUSTER_ENV: Readonly<Record<string, string>> = {
  PLACEGUARD_COLLECTOR_NAME: 'collectorName',
}

export type ClusterConfig = z.infer<typeof clusterConfigSchema>
