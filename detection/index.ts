/**
 * The detection room: the collector's streams through the policy engine,
 * findings into the alert book (`<data-dir>/alerts.db`), automated
 * responses, storm correlation and the pipeline's own health.
 */
export { Detection, SHIPPED_POLICIES_DIR, type DetectionOptions } from './detection.ts'
export { AlertBook, type AlertBookOptions, type AlertPage, type AlertQuery, type Raisable } from './alert-book.ts'
export { type AlertPosition, type AlertSighting, type AlertStore, type AlertStorePage, type AsyncAlertStore } from './alert-store.ts'
export { SqliteAlertStore } from './sqlite-alert-store.ts'
export { PgAlertStore, type PgAlertStoreOptions } from './pg-alert-store.ts'
export { ALERT_FEED_CHANNEL, PgAlertFeed, type PgAlertFeedCounters, type PgAlertFeedOptions } from './pg-alert-feed.ts'
export { DetectionStateFile, type SavedDetectionState } from './state-file.ts'
export { DetectionStateKeeper, type DetectionStateKeeperOptions } from './state-keeper.ts'
