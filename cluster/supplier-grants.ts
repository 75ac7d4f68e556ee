/**
 * Suppliers' grants (issue 17: kinds, sites, access windows) reach the
 * broker nodes through Redis, as the CRL does: a node holds no inventory,
 * only a copy of pki/'s public part. Where the CA key is kept, `placeguard
 * pki` stores every active supplier's grant in one hash (supplier id →
 * grant as JSON, replaced whole) and announces it; each node reads the
 * hash at start, at every announcement, and every `pollMs` (a missed
 * announcement, Redis restarted), so a grant changed in the inventory holds
 * on every node within a second, or `pollMs` at worst.
 *
 * Unlike the CRL, a grant is not signed: whoever can write to the
 * cluster's Redis can already route a message to any device's cmd topic
 * through the nodes' shared emitter, grant or none, so a signature would
 * not keep them from commanding a device (docs/cluster.md, Security of the
 * Redis link). What the nodes keep is the last grants they read: Redis
 * going away neither opens nor closes a supplier's access, and each node
 * checks the windows against its own clock at every connect and command.
 */
import type { Logger } from '../shared/logger.ts'
import type { ClusterKeys } from './keys.ts'
import type { Redis } from './redis.ts'
import { AnnouncedKey } from './announced-key.ts'

/** Replaces the grants the nodes follow and tells them; resolves with how many subscribers heard it. */
export async function publishSupplierGrants (redis: Redis, keys: ClusterKeys, grants: ReadonlyMap<string, unknown>): Promise<number> {
  const transaction = redis.multi().del(keys.suppliers)
  if (grants.size > 0) transaction.hset(keys.suppliers, Object.fromEntries([...grants].map(([id, grant]) => [id, JSON.stringify(grant)])))
  const results = await transaction.publish(keys.suppliersChannel, String(Date.now())).exec() ?? []
  for (const [error] of results) if (error) throw error
  return Number(results.at(-1)?.[1] ?? 0)
}

export interface SupplierGrantFollowerOptions<Grant> {
  redis: Redis
  /** A connection in subscriber mode (it can do nothing else). */
  subscriber: Redis
  keys: ClusterKeys
  /** Checks one stored grant; throws when it is not one (that supplier is then refused, and the reason logged). */
  parse: (supplierId: string, grant: unknown) => Grant
  logger: Logger
  pollMs?: number
}

/** Re-read even without an announcement this often: the bound on how late a node sees a changed grant. */
export const SUPPLIER_GRANTS_POLL_MS = 2_000

export class SupplierGrantFollower<Grant> {
  readonly #options: SupplierGrantFollowerOptions<Grant>
  readonly #key: AnnouncedKey
  /** The grants last read, each with the text it was parsed from (unchanged text is not parsed again). */
  #grants = new Map<string, { text: string, grant: Grant | undefined }>()

  constructor (options: SupplierGrantFollowerOptions<Grant>) {
    this.#options = options
    this.#key = new AnnouncedKey({
      subscriber: options.subscriber, channel: options.keys.suppliersChannel, pollMs: options.pollMs ?? SUPPLIER_GRANTS_POLL_MS,
      read: () => this.#fetch(),
    })
  }

  start (): Promise<void> {
    return this.#key.start()
  }

  stop (): Promise<void> {
    return this.#key.stop()
  }

  /** The supplier's grant as last read; undefined (refused) for one without a grant, or with one that did not check out. */
  grant (supplierId: string): Grant | undefined {
    return this.#grants.get(supplierId)?.grant
  }

  get size (): number {
    return this.#grants.size
  }

  async #fetch (): Promise<void> {
    const { redis, keys, parse, logger } = this.#options
    let stored: Record<string, string>
    try {
      stored = await redis.hgetall(keys.suppliers)
    } catch (error) {
      logger.warn({ err: (error as Error).message }, 'suppliers\' grants not read from the cluster; the node keeps the ones it read last')
      return
    }
    const next = new Map<string, { text: string, grant: Grant | undefined }>()
    for (const [supplierId, text] of Object.entries(stored)) {
      const known = this.#grants.get(supplierId)
      if (known?.text === text) {
        next.set(supplierId, known)
        continue
      }
      try {
        next.set(supplierId, { text, grant: parse(supplierId, JSON.parse(text)) })
      } catch (error) {
        logger.error({ err: (error as Error).message, supplierId }, 'supplier grant from the cluster refused; the supplier is refused until it is sent again')
        next.set(supplierId, { text, grant: undefined })
      }
    }
    this.#grants = next
  }
}
