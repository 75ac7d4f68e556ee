/**
 * Alerts (docs/product.md fields): findings deduplicated by (policy, device)
 * into one alert per open condition, with its lifecycle open →
 * acknowledged → resolved. Kept in an AlertStore (alert-store.ts; SQLite
 * by default, so a restart forgets nothing); a resolved condition that
 * returns opens a new alert. The book holds the rules, the store the rows.
 *
 * Over a synchronous store (SQLite) every method answers at once, as it
 * always has; over an asynchronous one (PostgreSQL, shared by a collector
 * group) it answers a Promise. Callers `await` either way (MaybeAsync).
 *
 * Over an asynchronous store the book's writes run one at a time, in the
 * order they were asked for (one promise chain), so a message's alert never
 * overtakes the alert of the message before it. Detection's writes (raise,
 * clear, recordResponse) are retried with back-off while the store fails,
 * holding the chain, so an outage delays alerts but loses none and keeps
 * their order; at most `maxQueuedWrites` wait, and past that bound a new
 * detection write is refused at once (counted in `writesRefused`, logged):
 * memory stays bounded, and the finding comes back at its next occurrence.
 * An operator's write (acknowledge, resolve, comment) waits its turn but is
 * tried once: its failure is the operator's answer. Reads go to the store
 * directly and do not wait for queued writes.
 *
 * A synchronous store that fails (SQLite on a full disk: SQLITE_FULL) is
 * treated alike: the detection write that failed, and every detection write
 * after it, is queued and retried in order, answered by a Promise, until the
 * queue drains; then writes are synchronous again. Nothing is thrown at the
 * caller (detection runs inside the MQTT client's message handler and its
 * own timers, where a throw ends the process). An operator's write on a
 * synchronous store is tried at once, queue or not, and its failure is the
 * operator's answer.
 */
import { randomUUID } from 'node:crypto'
import { type Clock, systemClock } from '../shared/clock.ts'
import { PlaceGuardError } from '../shared/errors.ts'
import type { Alert, AlertChange, AlertComment, AlertPolicy, AlertResponse, AlertStatus } from '../shared/alert-contract.ts'
import { ALERT_THREATS, type Clear, type Finding } from '../policies/index.ts'
import type { Logger } from '../shared/logger.ts'
import { after, isPromise, type MaybeAsync } from '../shared/maybe-async.ts'
import type { AlertPosition, AlertQuery, AlertStore, AsyncAlertStore } from './alert-store.ts'
import { SqliteAlertStore } from './sqlite-alert-store.ts'

export type { MaybeAsync }

/** A finding, or PlaceGuard's finding about itself (a system alert). */
export type Raisable = Omit<Finding, 'policy'> & { policy: AlertPolicy }

export type { Alert, AlertChange, AlertComment, AlertQuery, AlertResponse, AlertStatus }

/** Resolved alerts are kept this long for the record, then deleted (docs/product.md: alerts "and their history"). */
export const DEFAULT_RESOLVED_RETENTION_MS = 90 * 86_400_000
/** How often at most the book deletes expired alerts while it is being read. */
const EXPIRE_EVERY_MS = 3_600_000
/** What `list()` answers at most when the caller names no limit. */
export const LIST_LIMIT = 10_000

export interface AlertPage { items: Alert[], total: number, next: string | null }

export interface AlertBookOptions {
  /** Where the alerts are kept; when absent (and no `asyncStore`), a SQLite store at `path`. The book closes it. */
  store?: AlertStore
  /** An asynchronous store instead (PostgreSQL): the book's answers become Promises and its writes are queued. */
  asyncStore?: AsyncAlertStore
  /** Where retried and refused writes are reported (asynchronous store only). */
  logger?: Logger
  /** Detection writes waiting at most, over an asynchronous store (default 10 000). */
  maxQueuedWrites?: number
  /** First retry delay of a failed detection write (ms, doubled each time up to 30 s; default 500). */
  retryMs?: number
  /** The SQLite file of the default store; in memory when absent. */
  path?: string
  clock?: Clock
  resolvedRetentionMs?: number
}

export const DEFAULT_MAX_QUEUED_WRITES = 10_000
const MAX_RETRY_MS = 30_000

/** Either store, called alike: the sync one's answers are plain values. */
type AnyStore = { [K in keyof AlertStore]: AlertStore[K] extends (...args: infer A) => infer R ? (...args: A) => MaybeAsync<R> : never }

export class AlertBook {
  readonly #store: AnyStore
  readonly #async: boolean
  readonly #clock: Clock
  readonly #retentionMs: number
  readonly #logger: Logger | undefined
  readonly #maxQueued: number
  readonly #retryMs: number
  #expiredAtMs = -Infinity
  /** The last queued write (asynchronous store): the next one starts after it. */
  #tail: Promise<unknown> = Promise.resolve()
  #queued = 0
  /** Detection writes refused because `maxQueuedWrites` were waiting. */
  writesRefused = 0
  /** Failed attempts of detection writes that were then retried. */
  writesRetried = 0
  /** Detection writes given up at close while a synchronous store still refused them. */
  writesAbandoned = 0
  #closing = false
  #wakeOnClose: () => void = () => {}
  readonly #closed = new Promise<void>((resolve) => { this.#wakeOnClose = resolve })

  constructor (options: AlertBookOptions = {}) {
    this.#async = options.asyncStore !== undefined
    this.#store = options.asyncStore ?? options.store ?? new SqliteAlertStore({ path: options.path })
    this.#clock = options.clock ?? systemClock
    this.#retentionMs = options.resolvedRetentionMs ?? DEFAULT_RESOLVED_RETENTION_MS
    this.#logger = options.logger
    this.#maxQueued = options.maxQueuedWrites ?? DEFAULT_MAX_QUEUED_WRITES
    this.#retryMs = options.retryMs ?? 500
  }

  /** Whether answers are Promises (an asynchronous store). */
  get async (): boolean {
    return this.#async
  }

  /** Writes waiting in the queue (an asynchronous store, or a synchronous one that failed). */
  get queuedWrites (): number {
    return this.#queued
  }

  /** Resolves once every write asked for so far has been stored (or refused). */
  settled (): Promise<void> {
    return this.#tail.then(() => undefined, () => undefined)
  }

  /** Folds a finding into the live alert for its (policy, device), or opens one: one step of the store. */
  raise (finding: Raisable, where: { site?: string | null, kind?: string | null } = {}): MaybeAsync<AlertChange> {
    const { site, kind, ...found } = finding
    const now = this.#now()
    const threat = ALERT_THREATS[finding.policy]
    const opened: Alert = {
      id: randomUUID(), policy: finding.policy, severity: finding.severity, deviceId: finding.deviceId,
      site: site ?? where.site ?? null, kind: kind ?? where.kind ?? null, summary: finding.summary, detectedAt: now, status: 'open',
      evidence: finding.evidence, stride: threat.stride, attack: threat.attack ? `${threat.attack.id} ${threat.attack.name}` : null,
      lastSeenAt: now, occurrences: 1, acknowledgedBy: null, resolvedAt: null, resolution: null, response: null, comments: [],
    }
    return this.#write(true, () => this.#store.raise(opened, { severity: found.severity, summary: found.summary, evidence: found.evidence, lastSeenAt: now }))
  }

  /** The condition cleared by itself (the device spoke again, firmware updated). */
  clear (clear: Omit<Clear, 'policy'> & { policy: AlertPolicy }): MaybeAsync<AlertChange | undefined> {
    return after(this.#write(true, () => this.#store.updateLive(clear.policy, clear.deviceId, (live) => this.#resolved(live, `auto: ${clear.reason}`))),
      (resolved) => resolved && { change: 'resolved', alert: resolved })
  }

  acknowledge (id: string, by: string): MaybeAsync<AlertChange | undefined> {
    return after(this.#write(false, () => this.#store.update(id, (alert) => alert.status === 'open' ? { ...alert, status: 'acknowledged', acknowledgedBy: by } : undefined)),
      (updated) => updated && { change: 'acknowledged', alert: updated })
  }

  resolve (id: string, by: string): MaybeAsync<AlertChange | undefined> {
    return after(this.#write(false, () => this.#store.update(id, (alert) => alert.status !== 'resolved' ? this.#resolved(alert, `by ${by}`) : undefined)),
      (resolved) => resolved && { change: 'resolved', alert: resolved })
  }

  /** Records what was done about the alert's device (whatever the alert's status: a quarantine outlives a resolve). */
  recordResponse (id: string, response: Omit<AlertResponse, 'updatedAt'>): MaybeAsync<AlertChange | undefined> {
    const updatedAt = this.#now()
    return after(this.#write(true, () => this.#store.update(id, (alert) => ({ ...alert, response: { ...response, updatedAt } }))),
      (updated) => updated && { change: 'response', alert: updated })
  }

  /** Adds an analyst's note (any status). */
  comment (id: string, by: string, text: string): MaybeAsync<AlertChange | undefined> {
    const at = this.#now()
    return after(this.#write(false, () => this.#store.update(id, (alert) => ({ ...alert, comments: [...alert.comments, { by, at, text }] }))),
      (updated) => updated && { change: 'commented', alert: updated })
  }

  get (id: string): MaybeAsync<Alert | undefined> {
    return this.#store.get(id)
  }

  /** The newest alerts that match, at most `limit` (parsed: only those). */
  list (query: AlertQuery = {}, limit = LIST_LIMIT): MaybeAsync<Alert[]> {
    return after(this.page(query, limit), (page) => page.items)
  }

  /**
   * One page of the alerts that match, newest first. `next` is an opaque
   * cursor (the last item's time and id: keyset paging, so alerts opened
   * meanwhile neither shift nor repeat a page); `total` is counted by the store.
   */
  page (query: AlertQuery, limit: number, cursor?: string): MaybeAsync<AlertPage> {
    const position = cursor === undefined ? undefined : decodeCursor(cursor)
    return after(this.expire(), () => after(this.#store.page(query, limit, position),
      ({ items, total, last }) => ({ items, total, next: last ? encodeCursor(last) : null })))
  }

  /** Deletes resolved alerts older than the retention (at most hourly unless `force`); answers how many went. */
  expire (force = false): MaybeAsync<number> {
    const now = this.#clock.now()
    if (!force && now - this.#expiredAtMs < EXPIRE_EVERY_MS) return 0
    this.#expiredAtMs = now
    return this.#store.deleteResolvedBefore(new Date(now - this.#retentionMs).toISOString())
  }

  /**
   * Closes the store: an asynchronous one after the queued writes; a
   * synchronous one at once, its queued writes (a full disk) tried once more
   * and the rest given up, logged.
   */
  close (): MaybeAsync<void> {
    if (this.#async) return this.settled().then(() => this.#store.close())
    if (this.#queued === 0) return this.#store.close()
    this.#closing = true
    this.#wakeOnClose()
    return this.settled().then(() => this.#store.close())
  }

  /**
   * One write of the store. Synchronous store: now, unless detection writes
   * wait in the queue (a failed store); asynchronous: after the writes asked
   * for before it. `retry` (detection's writes) tries again with back-off
   * until the store takes it, within the queue's bound.
   */
  #write<T> (retry: boolean, write: () => MaybeAsync<T>): MaybeAsync<T> {
    if (!this.#async && (!retry || this.#queued === 0)) {
      try {
        return write()
      } catch (error) {
        if (!retry) throw error
        this.#failed(error as Error)
        return this.#enqueue(retry, write, true)
      }
    }
    return this.#enqueue(retry, write, false)
  }

  #enqueue<T> (retry: boolean, write: () => MaybeAsync<T>, failedOnce: boolean): Promise<T> {
    if (retry && this.#queued >= this.#maxQueued) {
      this.writesRefused++
      if (this.writesRefused === 1 || this.writesRefused % 1000 === 0) this.#logger?.error({ queued: this.#queued, refused: this.writesRefused }, 'alert store: write queue full; new findings are refused until it drains')
      return Promise.reject(new Error(`alert store: ${this.#queued} writes already waiting; this one is refused`))
    }
    this.#queued++
    const attempt = async (): Promise<T> => {
      let delayMs = this.#retryMs
      // A synchronous store's write that just failed (and was logged) waits its first delay before it is tried again.
      if (failedOnce) {
        await this.#pause(delayMs)
        delayMs = Math.min(delayMs * 2, MAX_RETRY_MS)
      }
      for (;;) {
        try {
          const result = write()
          return isPromise(result) ? await result : result
        } catch (error) {
          // A write refused for good (a stale lease: shared/fencing.ts) is not retried; its finding is the new holder's.
          if (!retry || (error as { permanent?: boolean }).permanent === true) throw error
          if (this.#closing) {
            this.writesAbandoned++
            this.#logger?.error({ err: (error as Error).message }, 'alert store: write given up at close while the store refused it')
            throw error
          }
          this.#failed(error as Error, delayMs)
          await this.#pause(delayMs)
          delayMs = Math.min(delayMs * 2, MAX_RETRY_MS)
        }
      }
    }
    const done = this.#tail.then(attempt, attempt).finally(() => { this.#queued-- })
    this.#tail = done.catch(() => undefined)
    return done
  }

  #failed (error: Error, retryInMs = this.#retryMs): void {
    this.writesRetried++
    this.#logger?.error({ err: error.message, retryInMs, queued: this.#queued }, 'alert store: write failed; retrying in order, nothing is lost')
  }

  /** Waits `ms`, or less once the book is closing (as OrderedWrites waits out a retry until its stop). */
  async #pause (ms: number): Promise<void> {
    if (this.#closing) return
    let timer: NodeJS.Timeout | undefined
    await Promise.race([new Promise((resolve) => { timer = setTimeout(resolve, ms) }), this.#closed])
    clearTimeout(timer)
  }

  #resolved (alert: Alert, resolution: string): Alert {
    return { ...alert, status: 'resolved', resolvedAt: this.#now(), resolution }
  }

  #now (): string {
    return new Date(this.#clock.now()).toISOString()
  }
}

function encodeCursor ({ detectedAt, id }: AlertPosition): string {
  return Buffer.from(`${detectedAt}|${id}`).toString('base64url')
}

function decodeCursor (cursor: string): AlertPosition {
  const match = /^(\d{4}-\d\d-\d\dT[\d:.]+Z)\|([0-9a-f-]{36})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'))
  if (!match) throw new PlaceGuardError('PG_ERR_INPUT_INVALID', 'cursor: not a cursor this API gave out', { field: 'cursor', hint: 'pass the `next` of the previous page' })
  return { detectedAt: match[1]!, id: match[2]! }
}
