/**
 * The synced advisories as a running collector sees them: read from
 * `<data-dir>/advisories.db`, or from the group's PostgreSQL with a
 * database URL (written by `placeguard advisories sync`, perhaps in
 * another process or on another machine) when their revision moved, and
 * turned into the match index detection and the API use. The collector
 * asks on the inventory's minute, and in a group every few seconds, so a
 * sync is in force on every collector of the group within that time.
 */
import { existsSync } from 'node:fs'
import { type AdvisoryListing, advisoriesPath, type AsyncAdvisoryStore, SqliteAdvisoryStore } from '../advisories/index.ts'
import { AdvisoryIndex, type AdvisoryMatch, type DeviceProduct } from '../shared/advisory-match.ts'
import type { InventoryEntry } from '../pki/index.ts'

export class AdvisoryFeed {
  /** The data directory's file, opened for each read (a sync writes it in another process); or the group's store. */
  readonly #from: { path: string } | { store: AsyncAdvisoryStore }
  #revision = -1
  #listing: AdvisoryListing[] = []
  #index: AdvisoryIndex | undefined
  #products = new Map<string, DeviceProduct>()

  /** `dataDir`: read `<dataDir>/advisories.db`; a store: read it (the group's PostgreSQL). */
  constructor (from: string | AsyncAdvisoryStore) {
    this.#from = typeof from === 'string' ? { path: advisoriesPath(from) } : { store: from }
  }

  /** Re-reads the advisories if a sync changed them; true when it did. One at a time: the caller does not overlap calls. */
  async refresh (): Promise<boolean> {
    const from = this.#from
    if ('store' in from) {
      const revision = await from.store.revision()
      if (revision === this.#revision) return false
      // Read after the revision: an upsert committed in between is in the listing, and read once more next time.
      this.#take(revision, await from.store.list())
      return true
    }
    if (!existsSync(from.path)) return false
    const store = new SqliteAdvisoryStore(from.path)
    try {
      const revision = store.revision()
      if (revision === this.#revision) return false
      this.#take(revision, store.list())
      return true
    } finally {
      store.close()
    }
  }

  #take (revision: number, listing: AdvisoryListing[]): void {
    this.#listing = listing
    this.#index = new AdvisoryIndex(listing)
    this.#revision = revision
  }

  /** The devices' vendor and model, from the inventory just read. */
  setDevices (entries: readonly InventoryEntry[]): void {
    this.#products = new Map(entries.filter((e) => e.role === 'device' && e.vendor && e.model).map((e) => [e.deviceId, { vendor: e.vendor!, model: e.model! }]))
  }

  productOf (deviceId: string): DeviceProduct | undefined {
    return this.#products.get(deviceId)
  }

  match (product: DeviceProduct, firmware: string): AdvisoryMatch[] {
    return this.#index?.match(product, firmware) ?? []
  }

  get listing (): readonly AdvisoryListing[] {
    return this.#listing
  }

  get index (): AdvisoryIndex | undefined {
    return this.#index
  }
}
