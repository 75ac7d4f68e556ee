/**
 * Revocation reaches every node through Redis, without a shared disk: the
 * machine that holds the CA key stores the new CRL (PEM) under one key and
 * announces it on a channel; each node reads it at start and at every
 * announcement. The CRL is signed by the CA, so Redis is only a carrier:
 * a node checks the signature and refuses an older CRL number before using
 * it (the caller's `apply`), and a node holds no CA key to sign one itself.
 * A missed announcement (Redis restarted, the node reconnecting) is made
 * good by re-reading the key every `pollMs`.
 */
import type { Logger } from '../shared/logger.ts'
import type { ClusterKeys } from './keys.ts'
import type { Redis } from './redis.ts'
import { AnnouncedKey } from './announced-key.ts'

/** Stores the CRL and tells the nodes; resolves with how many subscribers heard it. */
export async function publishCrl (redis: Redis, keys: ClusterKeys, pem: string): Promise<number> {
  const results = await redis.multi().set(keys.crl, pem).publish(keys.crlChannel, String(Date.now())).exec() ?? []
  for (const [error] of results) if (error) throw error
  // The PUBLISH's reply: how many subscribers heard the announcement.
  return Number(results[1]?.[1] ?? 0)
}

export interface CrlFollowerOptions {
  redis: Redis
  /** A connection in subscriber mode (it can do nothing else). */
  subscriber: Redis
  keys: ClusterKeys
  /** Checks and installs a CRL; rejects (and the CRL is ignored) when it is not the CA's or older than the current one. */
  apply: (pem: string) => Promise<void>
  logger: Logger
  pollMs?: number
}

export class CrlFollower {
  readonly #options: CrlFollowerOptions
  readonly #key: AnnouncedKey
  #last: string | undefined
  /** The last CRL refused: polling does not retry it (an announcement does). */
  #refused: string | undefined

  constructor (options: CrlFollowerOptions) {
    this.#options = options
    this.#key = new AnnouncedKey({
      subscriber: options.subscriber, channel: options.keys.crlChannel, pollMs: options.pollMs ?? 5_000,
      read: (announced) => {
        if (announced) this.#refused = undefined
        return this.#fetch()
      },
    })
  }

  start (): Promise<void> {
    return this.#key.start()
  }

  stop (): Promise<void> {
    return this.#key.stop()
  }

  async #fetch (): Promise<void> {
    const { redis, keys, apply, logger } = this.#options
    let pem: string | null
    try {
      pem = await redis.get(keys.crl)
    } catch (error) {
      logger.warn({ err: (error as Error).message }, 'cluster CRL not read; the node keeps its current CRL')
      return
    }
    if (!pem || pem === this.#last || pem === this.#refused) return
    try {
      await apply(pem)
      this.#last = pem
    } catch (error) {
      this.#refused = pem
      logger.error({ err: (error as Error).message }, 'CRL from the cluster refused')
    }
  }
}
