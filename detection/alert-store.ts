/**
 * Where the alert book keeps its alerts. The book (alert-book.ts) owns the
 * rules: what a finding does to an alert, which transitions are allowed,
 * when resolved alerts expire, what a cursor looks like. A store owns the
 * rows, their atomicity, and the deduplication key: at most one live (not
 * resolved) alert per (policy, device), enforced by the store itself, not
 * by the book's care (SQLite and PostgreSQL alike: a partial unique index
 * `ON alerts (policy, device_id) WHERE status <> 'resolved'`).
 *
 * So every write that depends on what is stored is one operation of the
 * store, never a read in the book followed by a write:
 *   - `raise` opens the live alert of a (policy, device) or refreshes it,
 *     in one step. PostgreSQL, shared by a collector group: one
 *     `INSERT … ON CONFLICT (policy, device_id) WHERE status <> 'resolved'
 *     DO UPDATE … RETURNING`, so two collectors raising the same condition
 *     at once make one alert with two occurrences.
 *   - `update` and `updateLive` read, change and write one alert under the
 *     store's lock (SQLite: one IMMEDIATE transaction; PostgreSQL: `SELECT
 *     … FOR UPDATE` in a transaction). `change` is a pure function of the
 *     stored alert, doing no I/O; a store may call it again if it retries.
 *
 * The implementations beside this file: sqlite-alert-store.ts, and
 * pg-alert-store.ts (an AsyncAlertStore, below). Every store passes the
 * same contract, test/detection/alert-store.contract.ts.
 *
 * Synchronous, as node:sqlite is and as the book's callers are: Detection
 * folds findings into alerts as messages arrive and the API answers from
 * the book, both without awaiting. An asynchronous backend (PostgreSQL)
 * fits the same shapes with Promise results: no answer of the store feeds a
 * second write in the book, callbacks do no I/O, and each method is one
 * transaction; then AlertBook's methods, and their callers in detection/,
 * dashboards/ and app/, become async with it. That ripple, and the
 * reordering it would allow between a message and its alert, is left to the
 * change that wires the PostgreSQL store into the collector.
 */
import type { Alert, AlertPolicy, AlertStatus, Evidence, Severity } from '../shared/alert-contract.ts'
import type { Promisified } from '../shared/promisified.ts'

/** A list's filters; each is applied by the store (in SQL), not after loading. */
export interface AlertQuery { status?: AlertStatus, policy?: AlertPolicy, deviceId?: string, severity?: Severity, site?: string }

/** Where an alert sits in the newest-first order: keyset paging continues after it. */
export interface AlertPosition { detectedAt: string, id: string }

/** What a repeat of a live condition brings: these replace the live alert's, and its occurrences grow by one. */
export interface AlertSighting { severity: Severity, summary: string, evidence: Evidence, lastSeenAt: string }

export interface AlertStorePage {
  items: Alert[]
  /** Every alert that matches the query, not only this page's. */
  total: number
  /** The last item's position when more alerts follow it; null on the last page. */
  last: AlertPosition | null
}

export interface AlertStore {
  /**
   * One atomic step: when (opened.policy, opened.deviceId) has a live
   * alert, it is refreshed with `seen` (see `refreshed`) and answered as
   * `updated`; otherwise `opened` is stored as it is and answered as
   * `opened`.
   */
  raise: (opened: Alert, seen: AlertSighting) => { change: 'opened' | 'updated', alert: Alert }
  /**
   * Atomic read-modify-write of one alert: `change` gets the stored alert
   * and answers its next state (same id, policy, deviceId and detectedAt),
   * or undefined to leave it as it is. Answers what was stored, or
   * undefined when nothing was (no such alert, or `change` declined).
   * Throws, storing nothing, when the change would make a second live
   * alert for a (policy, device).
   */
  update: (id: string, change: (alert: Alert) => Alert | undefined) => Alert | undefined
  /** `update` of the live alert of (policy, device), if there is one. */
  updateLive: (policy: AlertPolicy, deviceId: string, change: (alert: Alert) => Alert | undefined) => Alert | undefined
  get: (id: string) => Alert | undefined
  /**
   * The alerts that match, newest first (detectedAt, then id, both
   * descending), at most `limit`, after `after` when given: keyset paging,
   * so alerts stored meanwhile neither shift nor repeat a page.
   */
  page: (query: AlertQuery, limit: number, after?: AlertPosition) => AlertStorePage
  /** Deletes resolved alerts resolved before `resolvedBefore` (ISO time); answers how many went. Unresolved ones stay however old. */
  deleteResolvedBefore: (resolvedBefore: string) => number
  close: () => void
}

/**
 * The same store over a database reached through the network (PostgreSQL,
 * pg-alert-store.ts): each method one transaction, answered by a Promise.
 * `change` callbacks stay synchronous and do no I/O.
 */
export type AsyncAlertStore = Promisified<AlertStore>

/** The live alert after a repeat of its condition: what `raise` stores for `updated`. */
export function refreshed (live: Alert, seen: AlertSighting): Alert {
  return { ...live, severity: seen.severity, summary: seen.summary, evidence: seen.evidence, lastSeenAt: seen.lastSeenAt, occurrences: live.occurrences + 1 }
}
