/**
 * Suppliers' grants as a public file beside the CRL: `pki/supplier-grants.json`.
 *
 * A broker that faces the network gets only the PKI's public part (ca.crt,
 * server.crt, server.key, crl.pem; docker-compose's pki-public volume),
 * never the inventory or the CA key. It still has to know a supplier's
 * kinds, sites and access windows. The PKI rewrites this file whenever a
 * grant changes (a supplier issued, an identity revoked), next to the CRL,
 * and it is published with it; such a broker reads it instead of the
 * inventory. Nothing in it is secret, and nothing in it lets anyone in:
 * the TLS gate still requires a valid, unrevoked supplier certificate
 * before a grant is looked up. Cluster nodes get the same grants through
 * Redis (cluster/supplier-grants.ts).
 */
import { statSync } from 'node:fs'
import { join } from 'node:path'
import { writeFileAtomic, readTextIfExists } from '../shared/files.ts'
import type { SupplierGrant } from './fleet-pki.ts'
import { assertSupplierIdentity } from './identity-rules.ts'
import type { SupplierRecord } from './inventory.ts'

export const SUPPLIER_GRANTS_FILE = 'supplier-grants.json'
const FORMAT = 'placeguard-supplier-grants/1'
/** How often a reader looks at the file's modification time, at most. */
const RECHECK_MS = 2_000

export function supplierGrantsPath (pkiDir: string): string {
  return join(pkiDir, SUPPLIER_GRANTS_FILE)
}

/** Writes the grants of every supplier holding an active certificate; atomic (a reader never sees half). */
export function writeSupplierGrants (pkiDir: string, records: SupplierRecord[]): void {
  const grants = records.map(({ supplierId, kinds, sites, windows, updatedAt }) => ({ supplierId, kinds, sites, windows, updatedAt }))
  writeFileAtomic(supplierGrantsPath(pkiDir), JSON.stringify({ format: FORMAT, grants }, null, 2) + '\n')
}

/**
 * The broker's side: grants read from the file, read again when it
 * changes (checked at most every 2 s). An unreadable or malformed file
 * keeps the grants read last and says why once; no file means no grant:
 * every supplier is refused.
 */
export class SupplierGrantsFile {
  readonly #path: string
  readonly #now: () => number
  readonly #warn: (message: string) => void
  #grants = new Map<string, SupplierGrant>()
  #mtimeMs = -1
  #checkedAt = -Infinity
  #warned = false

  constructor (pkiDir: string, options: { now?: () => number, warn?: (message: string) => void } = {}) {
    this.#path = supplierGrantsPath(pkiDir)
    this.#now = options.now ?? Date.now
    this.#warn = options.warn ?? (() => {})
  }

  grant (supplierId: string): SupplierGrant | undefined {
    this.#refresh()
    return this.#grants.get(supplierId)
  }

  #refresh (): void {
    const now = this.#now()
    if (now - this.#checkedAt < RECHECK_MS) return
    this.#checkedAt = now
    let mtimeMs: number
    try {
      mtimeMs = statSync(this.#path).mtimeMs
    } catch {
      this.#grants = new Map()
      this.#mtimeMs = -1
      return
    }
    if (mtimeMs === this.#mtimeMs) return
    try {
      const parsed = JSON.parse(readTextIfExists(this.#path) ?? '') as { format?: unknown, grants?: unknown }
      if (parsed.format !== FORMAT || !Array.isArray(parsed.grants)) throw new Error(`not a ${FORMAT} file`)
      const grants = new Map<string, SupplierGrant>()
      for (const entry of parsed.grants as SupplierRecord[]) {
        // The same checks as at `pki issue`: a hand-edited file cannot widen a grant past what is valid.
        const grant = assertSupplierIdentity({ supplierId: entry.supplierId, kinds: Array.isArray(entry.kinds) ? entry.kinds : [], sites: Array.isArray(entry.sites) ? entry.sites : [], windows: entry.windows })
        grants.set(grant.supplierId, grant)
      }
      this.#grants = grants
      this.#mtimeMs = mtimeMs
      this.#warned = false
    } catch (error) {
      if (!this.#warned) this.#warn(`${this.#path}: ${(error as Error).message}; the grants read last stay in force`)
      this.#warned = true
    }
  }
}
