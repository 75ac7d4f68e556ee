/**
 * The audit room: the operator audit trail, append-only and hash-chained,
 * in `<data-dir>/audit.db` or the collector group's PostgreSQL
 * (docs/audit-trail.md). The API records operators' actions here.
 */
export type { AsyncAuditStore, AuditBreak, AuditEntry, AuditEvent, AuditOrder, AuditPage, AuditQuery, AuditStore, AuditVerdict } from './audit-store.ts'
export { canonicalJson, chainHash, GENESIS_HASH } from './chain.ts'
export { SqliteAuditStore, type SqliteAuditStoreOptions } from './sqlite-audit-store.ts'
export { PgAuditStore, type PgAuditStoreOptions } from './pg-audit-store.ts'
