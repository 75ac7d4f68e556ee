/**
 * The advisories room: CSAF 2.0 and OSV advisories synced from providers
 * (over HTTP or from an offline mirror), checked, parsed and kept in
 * `<data-dir>/advisories.db`, or in the collector group's PostgreSQL.
 * Matching devices against them is a pure function in
 * shared/advisory-match.ts, so policies/ can run it too.
 */
export { parseCsaf, type ParsedAdvisory, type StoredAdvisory } from './csaf-document.ts'
export { parseOsv } from './osv-document.ts'
export { AdvisoryInputError } from './input.ts'
export { loadKeyFile, normalFingerprint, OpenPgpKeyError, readTrustedKeys, type SignatureTrust, type TrustedKey } from './openpgp-trust.ts'
export { DEFAULT_LIMITS, syncCsafProvider, syncOsvDirectory, type Refusal, type SyncLimits, type SyncOptions, type SyncReport } from './csaf-sync.ts'
export type { AdvisoryListing, AdvisoryOrigin, AdvisoryStore, AsyncAdvisoryStore, ProviderPosition, UpsertResult } from './advisory-store.ts'
export { SqliteAdvisoryStore } from './sqlite-advisory-store.ts'
export { PgAdvisoryStore, type PgAdvisoryStoreOptions } from './pg-advisory-store.ts'
export { advisoriesNaming, advisoriesPath, exposureCounts, openAdvisoryStore } from './advisory-books.ts'
