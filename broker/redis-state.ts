/**
 * A broker node's MQTT state in Redis, for the cluster: sessions,
 * subscriptions, retained messages and QoS 1 messages in flight in
 * aedes-persistence-redis, and routing between nodes through
 * mqemitter-redis (each node receives what its subscribers match). The
 * versions are pinned together in package.json; test/cluster/aedes-redis.test.ts
 * proves the pair works with the pinned aedes.
 *
 * aedes-persistence-redis writes its keys without a prefix (`client:…`,
 * `retained`, `outgoing:…`) and scans some of them by pattern, so the
 * cluster's Redis (or its database number) belongs to one PlaceGuard
 * deployment (docs/cluster.md).
 */
import type { AedesOptions } from 'aedes'
import aedesPersistenceRedis from 'aedes-persistence-redis'
import { Redis } from 'ioredis'
import mqemitterRedis from 'mqemitter-redis'
import { installFastQueue } from './mq-fast-queue.ts'

export interface RedisStateOptions {
  url: string
  /** The node id: aedes' broker id, in the persistence's keys for this node's wills and in-flight packets. */
  nodeId: string
  /**
   * Queued messages delivered to a persistent session when it comes back
   * (aedes-persistence-redis' maxSessionDelivery, whose default of 1,000
   * would leave the rest until the next reconnection).
   */
  maxSessionDelivery?: number
}

export type RedisState = Required<Pick<AedesOptions, 'persistence' | 'mq' | 'id'>>

/** aedes-persistence's callback/promise destroy. */
interface Destroyable { destroy: (callback?: () => void) => Promise<void> | undefined }

export function createRedisState (options: RedisStateOptions): RedisState {
  // The persistence takes ioredis options or a connection, not a URL.
  const connection = new Redis(options.url, { connectionName: `placeguard-${options.nodeId}-state` })
  const persistence = aedesPersistenceRedis({ conn: connection, maxSessionDelivery: options.maxSessionDelivery ?? 100_000 }) as Destroyable
  const destroy = persistence.destroy.bind(persistence)
  // The broker destroys the persistence once aedes has closed (broker.ts); by
  // then the emitter is closed too, and the persistence's first step (to
  // unsubscribe from it) never answers. It is given a second, then its
  // connection is closed all the same.
  persistence.destroy = async (callback?: () => void) => {
    await Promise.race([Promise.resolve(destroy()).catch(() => undefined), new Promise((resolve) => setTimeout(resolve, 1_000).unref())])
    connection.disconnect()
    callback?.()
  }
  // The emitter's subscriber connection without ioredis' ready check: ioredis 5.9 sends a SUBSCRIBE
  // during the connection phase while its ready check still waits (CLIENT SETINFO, read asynchronously),
  // then its INFO is refused in subscriber mode, and mqemitter-redis rethrows that as an unheard 'error'
  // that ended the node at start (seen once in a full test run). A subscriber needs no ready check:
  // Redis accepts SUBSCRIBE while it is still loading its data.
  const subConn = new Redis(options.url, { connectionName: `placeguard-${options.nodeId}-mq-sub`, enableReadyCheck: false })
  const pubConn = new Redis(options.url, { connectionName: `placeguard-${options.nodeId}-mq-pub` })
  const mq = installFastQueue(mqemitterRedis({ subConn, pubConn, matchEmptyLevels: true, concurrency: 100 }))
  return {
    id: options.nodeId,
    persistence: persistence as unknown as RedisState['persistence'],
    mq: mq as unknown as RedisState['mq'],
  }
}
