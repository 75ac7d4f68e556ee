/**
 * What each device is, as its supplier names it: vendor and model, so
 * that advisories naming a product can be matched to the devices that are
 * one (docs/advisories.md). Kept in a table of its own in the inventory's
 * database (`device_products`, keyed by device id), beside the
 * certificates rather than in their rows: a device keeps its vendor and
 * model across renewals and re-issues.
 */
import { DatabaseSync } from 'node:sqlite'
import { invalidInput } from '../shared/errors.ts'

export interface DeviceProduct { vendor: string, model: string }

const SCHEMA = `
CREATE TABLE IF NOT EXISTS device_products (
  device_id  TEXT PRIMARY KEY,
  vendor     TEXT NOT NULL,
  model      TEXT NOT NULL
);`

/** Printable, 1–100 characters: it is shown in alerts and compared with advisories' product names. */
const NAME = /^[^\p{Cc}]{1,100}$/u

/** The vendor and model of a request, checked; undefined when neither is given. Both or neither. */
export function deviceProductOf (request: { vendor?: string, model?: string }): DeviceProduct | undefined {
  const { vendor, model } = request
  if (vendor === undefined && model === undefined) return undefined
  if (vendor === undefined) throw invalidInput('vendor', 'give the vendor with the model', 'e.g. --vendor "Acme Metering" --model EM-400')
  if (model === undefined) throw invalidInput('model', 'give the model with the vendor', 'e.g. --vendor "Acme Metering" --model EM-400')
  for (const [field, value] of [['vendor', vendor], ['model', model]] as const) {
    if (!NAME.test(value.trim())) throw invalidInput(field, `"${value.slice(0, 40)}" must be 1 to 100 printable characters`, 'as the supplier\'s advisories name it')
  }
  return { vendor: vendor.trim().replace(/\s+/g, ' '), model: model.trim().replace(/\s+/g, ' ') }
}

export class DeviceProducts {
  readonly #db: DatabaseSync

  constructor (inventoryPath: string) {
    this.#db = new DatabaseSync(inventoryPath)
    this.#db.exec('PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000;')
    this.#db.exec(SCHEMA)
  }

  set (deviceId: string, product: DeviceProduct): void {
    this.setMany([[deviceId, product]])
  }

  /** A batch's products in one transaction: one commit, not one a device (10,000 commits took seconds). */
  setMany (products: Array<[deviceId: string, product: DeviceProduct]>): void {
    if (products.length === 0) return
    const upsert = this.#db.prepare(`INSERT INTO device_products (device_id, vendor, model) VALUES (?, ?, ?)
      ON CONFLICT (device_id) DO UPDATE SET vendor = excluded.vendor, model = excluded.model`)
    this.#db.exec('BEGIN IMMEDIATE')
    try {
      for (const [deviceId, product] of products) upsert.run(deviceId, product.vendor, product.model)
      this.#db.exec('COMMIT')
    } catch (error) {
      this.#db.exec('ROLLBACK')
      throw error
    }
  }

  all (): Map<string, DeviceProduct> {
    const rows = this.#db.prepare('SELECT device_id, vendor, model FROM device_products').all() as Array<{ device_id: string, vendor: string, model: string }>
    return new Map(rows.map((row) => [row.device_id, { vendor: row.vendor, model: row.model }]))
  }

  close (): void {
    this.#db.close()
  }
}
