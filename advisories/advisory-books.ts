import { join } from 'node:path'
import { AdvisoryIndex, type DeviceProduct, normaliseName } from '../shared/advisory-match.ts'
import type { AdvisoryListing } from './advisory-store.ts'
import { SqliteAdvisoryStore } from './sqlite-advisory-store.ts'

export function advisoriesPath (dataDir: string): string {
  return join(dataDir, 'advisories.db')
}

export function openAdvisoryStore (dataDir: string, options: { readOnly?: boolean } = {}): SqliteAdvisoryStore {
  return new SqliteAdvisoryStore(advisoriesPath(dataDir), options)
}

/**
 * How many advisories name this vendor and model as affected, in some
 * version: a product's exposure where its firmware is not known (`pki
 * list`; the inventory holds no firmware). Which of them the running
 * firmware is affected by is `exposureCounts`' and the API's question.
 */
export function advisoriesNaming (advisories: readonly AdvisoryListing[], product: DeviceProduct): number {
  const vendor = normaliseName(product.vendor)
  const model = normaliseName(product.model)
  return advisories.filter((advisory) => advisory.products.some((p) => p.status === 'affected' && normaliseName(p.vendor) === vendor && normaliseName(p.model) === model)).length
}

/** Per advisory id, how many of these devices (vendor, model, firmware) it affects now. */
export function exposureCounts (advisories: readonly AdvisoryListing[], devices: Iterable<DeviceProduct & { firmware: string }>): Map<string, number> {
  const index = new AdvisoryIndex(advisories)
  const counts = new Map<string, number>()
  for (const device of devices) for (const match of index.match(device, device.firmware)) counts.set(match.advisory.id, (counts.get(match.advisory.id) ?? 0) + 1)
  return counts
}
