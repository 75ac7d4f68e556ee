/**
 * Where synced advisories are kept (`<data-dir>/advisories.db`): each
 * advisory with its product lines, which file of which provider it came
 * from and that file's hash (so an unchanged file is not read again), and
 * each provider's sync position (the last `changes.csv` time taken in,
 * and the files refused last time, to try again).
 *
 * Synchronous, as node:sqlite is; a PostgreSQL store for a collector
 * group would implement `Promisified<AdvisoryStore>` (shared/promisified.ts)
 * like the other stores (docs/development.md#stores).
 */
import type { FirmwareSbom } from '../shared/advisory-match.ts'
import type { StoredAdvisory } from './csaf-document.ts'

/** Where an advisory was read from: the provider (its metadata URL or mirror directory) and the file in its distribution. */
export interface AdvisoryOrigin { provider: string, file: string, sha256: string }

export interface ProviderPosition {
  /** The newest `changes.csv` time taken in (ISO 8601); null before the first sync, or for a provider without changes.csv. */
  changedUntil: string | null
  /** Files refused last time (hash mismatch, bad JSON…): fetched again next time, whatever changes.csv says. */
  retry: string[]
  syncedAt: string | null
}

export type UpsertResult = 'new' | 'updated' | 'unchanged'

export interface AdvisoryListing extends StoredAdvisory { provider: string, file: string, syncedAt: string }

/** An SBOM recorded for one firmware of a product (`advisories sbom add`, sbom-document.ts). */
export interface StoredSbom extends FirmwareSbom {
  format: 'cyclonedx' | 'spdx'
  /** `specVersion` (CycloneDX 1.4–1.6) or `spdxVersion` (SPDX-2.2, SPDX-2.3). */
  specVersion: string
  /** Where it was read from, as given: a file path or an https URL. */
  source: string
  /** Of the bytes read: recording the same SBOM again changes nothing. */
  sha256: string
}

export interface SbomListing extends StoredSbom { recordedAt: string }

export interface AdvisoryStore {
  /** Stores the advisory (its product lines replaced), keyed by its id: `updated` when the id was known. */
  upsert: (advisory: StoredAdvisory, origin: AdvisoryOrigin, at: string) => UpsertResult
  /** The hash stored for a provider's file, to skip a file that has not changed. */
  hashOf: (provider: string, file: string) => string | undefined
  position: (provider: string) => ProviderPosition
  setPosition: (provider: string, position: ProviderPosition) => void
  /** Every advisory with its product lines, by id. */
  list: () => AdvisoryListing[]
  /** Records the SBOM of a firmware, replacing the one recorded for the same vendor, model and firmware (sbomKey in shared/advisory-match.ts). */
  putSbom: (sbom: StoredSbom, at: string) => UpsertResult
  /** Forgets the SBOM of a firmware; false when none was recorded. */
  removeSbom: (product: Pick<FirmwareSbom, 'vendor' | 'model' | 'firmware'>) => boolean
  /** Every SBOM recorded, with its components, by vendor, model and firmware. */
  sboms: () => SbomListing[]
  /** Changes with every upsert, SBOM recorded or removed that changed something: a reader rebuilds its match index only when it moved. */
  revision: () => number
  close: () => void
}
