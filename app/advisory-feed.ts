/**
 * The synced advisories as a running collector sees them: read from
 * `<data-dir>/advisories.db` (written by `placeguard advisories sync`,
 * perhaps in another process) when its revision moved, and turned into
 * the match index detection and the API use. Checked on the inventory's
 * minute, so a sync is in force within a minute.
 */
import { existsSync } from 'node:fs'
import { type AdvisoryListing, advisoriesPath, SqliteAdvisoryStore } from '../advisories/index.ts'
import { AdvisoryIndex, type AdvisoryMatch, type DeviceProduct } from '../shared/advisory-match.ts'
import type { InventoryEntry } from '../pki/index.ts'

export class AdvisoryFeed {
  readonly #path: string
  #revision = -1
  #listing: AdvisoryListing[] = []
  #index: AdvisoryIndex | undefined
  #products = new Map<string, DeviceProduct>()

  constructor (dataDir: string) {
    this.#path = advisoriesPath(dataDir)
  }

  /** Re-reads the store if a sync changed it; true when it did. */
  refresh (): boolean {
    if (!existsSync(this.#path)) return false
    const store = new SqliteAdvisoryStore(this.#path)
    try {
      const revision = store.revision()
      if (revision === this.#revision) return false
      this.#listing = store.list()
      // The SBOMs recorded for firmwares: their components are matched against the advisories' OSV packages.
      this.#index = new AdvisoryIndex(this.#listing, store.sboms())
      this.#revision = revision
      return true
    } finally {
      store.close()
    }
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
