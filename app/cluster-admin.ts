/**
 * The operator's side of the cluster: the CRL and suppliers' grants
 * written where the CA key is kept, sent through Redis to every node; and
 * what `placeguard cluster status` shows.
 */
import { readFileSync } from 'node:fs'
import { clusterKeys, clusterStatus, connectRedis, publishCrl, publishSupplierGrants, redactRedisUrl, type ClusterStatus } from '../cluster/index.ts'
import { FleetPki, pkiPaths } from '../pki/index.ts'
import { PlaceGuardError } from '../shared/errors.ts'
import { createLogger } from '../shared/logger.ts'
import type { Config } from './config.ts'

async function withRedis<T> (redisUrl: string, name: string, work: (redis: ReturnType<typeof connectRedis>) => Promise<T>): Promise<T> {
  const redis = connectRedis({ url: redisUrl, name, logger: createLogger({ level: 'silent' }) })
  try {
    return await work(redis)
  } catch (error) {
    throw new PlaceGuardError('PG_ERR_CLUSTER_UNREACHABLE', `the cluster's Redis (${redactRedisUrl(redisUrl)}) did not answer: ${(error as Error).message}`, { field: 'redisUrl', cause: error })
  } finally {
    redis.disconnect()
  }
}

/** Sends the data directory's CRL to every node; resolves with how many nodes were listening. */
export async function shareCrl (config: Pick<Config, 'dataDir'>, redisUrl: string): Promise<number> {
  const pem = readFileSync(pkiPaths(config.dataDir).crl, 'utf8')
  return await withRedis(redisUrl, 'placeguard-pki', async (redis) => await publishCrl(redis, clusterKeys(), pem))
}

/**
 * Sends every active supplier's grant (kinds, sites, windows as written) to
 * the nodes, replacing what they follow (cluster/supplier-grants.ts): a
 * supplier issued, revoked or gone from the inventory holds on every node
 * as it does here. Resolves with how many nodes were listening.
 */
export async function shareSupplierGrants (config: Pick<Config, 'dataDir'>, redisUrl: string): Promise<number> {
  const pki = new FleetPki(config.dataDir)
  let grants: Map<string, unknown>
  try {
    grants = new Map(pki.supplierRecords().map(({ supplierId, kinds, sites, windows, updatedAt }) => [supplierId, { kinds, sites, windows, updatedAt }]))
  } finally {
    pki.close()
  }
  return await withRedis(redisUrl, 'placeguard-pki', async (redis) => await publishSupplierGrants(redis, clusterKeys(), grants))
}

export async function readClusterStatus (config: Pick<Config, 'cluster'>, redisUrl: string): Promise<ClusterStatus> {
  return await withRedis(redisUrl, 'placeguard-status', async (redis) => await clusterStatus(redis, clusterKeys(), config.cluster.partitions))
}
