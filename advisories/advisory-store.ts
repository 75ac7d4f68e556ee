/**
 * Where synced advisories are kept (`<data-dir>/advisories.db`): each
 * advisory with its product lines, which file of which provider it came
 * from and that file's hash (so an unchanged file is not read again), and
 * each provider's sync position (the last `changes.csv` time taken in,
 * and the files refused last time, to try again).
 *
 * Synchronous, as node:sqlite is (sqlite-advisory-store.ts); a collector
 * group keeps them in its PostgreSQL (pg-advisory-store.ts, an
 * AsyncAdvisoryStore), so every collector matches the same advisories and
 * a sync from any machine goes on from where the last one stopped.
 *
 * Two syncs of one provider may run at once (cron on two machines): an
 * upsert is one transaction keyed by the advisory's id, and a position is
 * only replaced by one at least as far along (see setPosition).
 */
import type { Promisified } from '../shared/promisified.ts'
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

export interface AdvisoryStore {
  /**
   * Stores the advisory (its product lines replaced), keyed by its id: `updated` when the id was known.
   * `unchanged` when the same file is stored already, or when the stored one was released later
   * (`supersedes`): a sync that read an older copy, finishing after one that read the newer, keeps the newer.
   */
  upsert: (advisory: StoredAdvisory, origin: AdvisoryOrigin, at: string) => UpsertResult
  /** The hash stored for a provider's file, to skip a file that has not changed. */
  hashOf: (provider: string, file: string) => string | undefined
  position: (provider: string) => ProviderPosition
  /**
   * Records where a sync got to. Ignored when the stored position is further on (a later
   * `changedUntil`): of two syncs at once, the one that read the newer changes.csv wins whichever
   * finishes last. Either position is sound — each names every file before it as stored or to retry —
   * so keeping the further one only saves reading files again.
   */
  setPosition: (provider: string, position: ProviderPosition) => void
  /** Every advisory with its product lines, by id. */
  list: () => AdvisoryListing[]
  /** Changes with every upsert that changed something: a reader rebuilds its match index only when it moved. */
  revision: () => number
  close: () => void
}

/** The same store over a database reached through the network (PostgreSQL, pg-advisory-store.ts): each method answered by a Promise. */
export type AsyncAdvisoryStore = Promisified<AdvisoryStore>

/** Whether the stored copy of an advisory was released after `incoming` (CSAF current_release_date, OSV modified): then it stays. */
export function supersedes (stored: { releasedAt: string }, incoming: { releasedAt: string }): boolean {
  const [was, is] = [Date.parse(stored.releasedAt), Date.parse(incoming.releasedAt)]
  return Number.isFinite(was) && Number.isFinite(is) && was > is
}

