/**
 * Redis connections for the cluster (ioredis). A URL with a password never
 * reaches a log line: connection errors are reported with the host only.
 */
import { Redis, type RedisOptions } from 'ioredis'
import type { Logger } from '../shared/logger.ts'

export type { Redis }

export interface RedisConnectOptions {
  url: string
  /** Shown in `CLIENT LIST`, so an operator can tell PlaceGuard's connections apart. */
  name: string
  logger: Logger
  /** For blocking reads (XREADGROUP BLOCK) and subscriptions: no auto-pipelining. */
  blocking?: boolean
}

/** The URL without its credentials, for messages. */
export function redactRedisUrl (url: string): string {
  try {
    const parsed = new URL(url)
    parsed.username = ''
    parsed.password = ''
    return parsed.toString()
  } catch {
    return '(unparsable Redis URL)'
  }
}

export function connectRedis (options: RedisConnectOptions): Redis {
  const where = redactRedisUrl(options.url)
  const settings: RedisOptions = {
    connectionName: options.name,
    // Commands issued in one tick go in one round trip: many devices' XADDs share it.
    enableAutoPipelining: !options.blocking,
    // Commands wait while Redis is briefly away instead of failing at once;
    // the callers' own timeouts and back-off decide what a longer outage means.
    maxRetriesPerRequest: options.blocking ? null : 3,
    retryStrategy: (attempt) => Math.min(2_000, 50 * 2 ** attempt),
  }
  const redis = new Redis(options.url, settings)
  let down = false
  redis.on('error', (error: Error) => {
    if (down) return
    down = true
    options.logger.error({ redis: where, err: error.message }, `redis connection (${options.name}) failing; retrying`)
  })
  redis.on('ready', () => {
    if (down) options.logger.info({ redis: where }, `redis connection (${options.name}) back`)
    down = false
  })
  return redis
}
