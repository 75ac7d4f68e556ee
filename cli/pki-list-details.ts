/**
 * What `pki list` shows beside each certificate (issue 17): a supplier's
 * grant — kinds, sites, access windows as written, and whether a window is
 * open now — and a device's exposure, the advisories naming its vendor and
 * model, read from `<data-dir>/advisories.db` when `advisories sync` has
 * made one (opened read-only: listing never creates it nor waits on a
 * sync's write lock).
 */
import { existsSync } from 'node:fs'
import { advisoriesNaming, advisoriesPath, type AdvisoryListing, openAdvisoryStore } from '../advisories/index.ts'
import type { FleetPki, SupplierRecord } from '../pki/index.ts'
import { assertAccessWindows, openWindow } from '../shared/access-windows.ts'

export interface SupplierGrantView {
  kinds: string[]
  sites: string[]
  /** As written at `pki issue` (a weekly duration stays "2h"). */
  windows: unknown[]
  /** Whether one of its windows is open now, on this machine's clock. */
  windowOpenNow: boolean
}

/** The grant of each supplier holding an active certificate, by id. */
export function supplierGrantViews (fleet: FleetPki, nowMs: number): Map<string, SupplierGrantView> {
  return new Map(fleet.supplierRecords().map((record: SupplierRecord) => [record.supplierId, {
    kinds: record.kinds, sites: record.sites, windows: record.windows,
    windowOpenNow: openWindow(assertAccessWindows('windows', record.windows), nowMs) !== undefined,
  }]))
}

/** The synced advisories, or undefined when this data directory has none. */
export function syncedAdvisories (dataDir: string): AdvisoryListing[] | undefined {
  if (!existsSync(advisoriesPath(dataDir))) return undefined
  const store = openAdvisoryStore(dataDir, { readOnly: true })
  try {
    return store.list()
  } finally {
    store.close()
  }
}

/** Advisories naming a device's product; null when it has no vendor and model or no advisories were synced. */
export function advisoryCount (advisories: readonly AdvisoryListing[] | undefined, device: { vendor?: string | null, model?: string | null }): number | null {
  if (!advisories || !device.vendor || !device.model) return null
  return advisoriesNaming(advisories, { vendor: device.vendor, model: device.model })
}

/** One window for a person: `tue,thu 02:00 for 2h (Europe/London)` or `2026-12-01T02:00Z → 2026-12-01T04:00Z`. */
export function describeWindow (window: unknown): string {
  const { from, until, weekly } = window as { from?: string, until?: string, weekly?: { days: string[], start: string, duration: string | number, timeZone?: string } }
  if (weekly) return `${weekly.days.join(',')} ${weekly.start} for ${typeof weekly.duration === 'number' ? `${weekly.duration}s` : weekly.duration} (${weekly.timeZone ?? 'Europe/London'})`
  return `${from} → ${until}`
}
