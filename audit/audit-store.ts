/**
 * Where the operator audit trail is kept: who did what to which alert,
 * device or sink, from where, and how it went. Append-only and
 * hash-chained (chain.ts): each entry's hash covers its fields and the
 * previous entry's hash, and a head (the last seq and hash) is kept beside
 * the entries, so an entry changed, removed or slipped in by someone past
 * the store's guards breaks the chain where they did it, and `verify`
 * names that seq.
 *
 * A store owns the numbering: `append` draws the next seq, reads the
 * clock and links the entry to the head under one lock (SQLite: one
 * IMMEDIATE transaction; PostgreSQL: the `audit_chain` trigger under the
 * lock of `audit_head`'s row), so two writers at once make one gapless
 * chain, and seq order is the order entries were committed.
 *
 * The implementations beside this file: sqlite-audit-store.ts
 * (`<data-dir>/audit.db`) and pg-audit-store.ts (the group's PostgreSQL,
 * an AsyncAuditStore). Both pass test/audit/audit-store.contract.ts.
 * Synchronous, as node:sqlite is; the API awaits either.
 */
import type { Promisified } from '../shared/promisified.ts'
import type { AuditRecord } from '../shared/audit-record.ts'

/** What the caller says happened; the store adds seq, time and hashes. */
export interface AuditEvent {
  /** Who: the API's caller as `role:fingerprint` (dashboards/api/auth.ts), never a credential. */
  actor: string
  /** What, as `room.verb`: `alert.acknowledge`, `quarantine.lift`, `delivery.requeue`… */
  action: string
  /** Which alert id, device id or sink; absent for actions on the whole (a policy reload). */
  subject?: string | null
  /** The action's particulars (a comment, an outcome), plain JSON. May not have a key `from`: that is the field below. */
  detail?: Record<string, unknown>
  /** Where from: the remote address. Kept in the stored detail as `from`, so the hash covers it. */
  from?: string | null
  /**
   * Names the action once for good, for a caller that may be told of it
   * twice (a broker event redelivered at QoS 1): an append whose key is
   * already recorded writes nothing and answers the entry recorded then.
   * Kept beside the entry, outside its hash; put the id in `detail` too
   * for the chain to cover it.
   */
  key?: string
}

/** A stored entry: the record the SOC receives, and the hash of the entry before it. */
export interface AuditEntry extends AuditRecord {
  prevHash: string
}

/** Newest first (the API's default) or oldest first (reading the trail as it happened). */
export type AuditOrder = 'newest' | 'oldest'

export interface AuditQuery {
  order?: AuditOrder
  /** Only this alert's, device's or sink's entries. */
  subject?: string
}

export interface AuditPage {
  items: AuditEntry[]
  /** Every entry that matches the query, not only this page's. */
  total: number
  /** The last item's seq when more entries follow it; null on the last page. */
  last: number | null
}

/**
 * Why the chain breaks at `brokenAt`:
 *   - `edited`: the entry there no longer matches its hash, or no longer
 *     follows the entry before it (one of the two was rewritten with a
 *     fresh hash);
 *   - `deleted`: the entry with that seq is gone (the head says it was written);
 *   - `inserted`: entries from that seq on were written past the chain's
 *     head, not appended through the store;
 *   - `head-moved`: the head (last seq and hash) does not match the last entry.
 */
export type AuditBreak = 'edited' | 'deleted' | 'inserted' | 'head-moved'

export type AuditVerdict =
  | { intact: true, entries: number }
  | { intact: false, entries: number, brokenAt: number, reason: AuditBreak, message: string }

export interface AuditStore {
  /** Records one event at the head of the chain (once per `key`); answers it as stored. Throws when it cannot be recorded. */
  append: (event: AuditEvent) => AuditEntry
  /**
   * Entries that match, by seq in `query.order` (newest first by
   * default), at most `limit`, after the entry `after` when given: keyset
   * paging, so entries appended meanwhile neither shift nor repeat a page.
   */
  page: (query: AuditQuery, limit: number, after?: number) => AuditPage
  /** Walks the whole chain and its head: intact, or the first seq where it breaks and why. */
  verify: () => AuditVerdict
  close: () => void
}

/** The same store over a database reached through the network (PostgreSQL, pg-audit-store.ts): each method answered by a Promise. */
export type AsyncAuditStore = Promisified<AuditStore>
