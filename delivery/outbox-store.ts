/**
 * Where the outbox keeps its deliveries. The outbox (outbox.ts) owns the
 * rules: routing, the per-sink worker, rate, batching, back-off, when a
 * failing sink's deliveries go to the dead-letter list, how long delivered
 * marks are kept. A store owns the queue: durable, ordered per sink, and
 * every step on it atomic.
 *
 * Each operation is one transaction of the store, so a backend shared by
 * several collectors (PostgreSQL) keeps the same guarantees:
 *   - `add` stores an alert change's deliveries to every sink, all or none;
 *     durable on return.
 *   - `claim` is how a worker takes the head of its sink's queue. Order is
 *     strict per sink: nothing overtakes the head, which waits out its
 *     back-off. In one process (SQLite) a claim is a read; a shared store
 *     makes it exclusive per sink, so that one worker in the group sends a
 *     sink's deliveries at a time: it locks the sink's row (`SELECT … FROM
 *     sinks WHERE name = $1 FOR UPDATE SKIP LOCKED`, a held sink
 *     answering no deliveries) and holds it as a lease with an expiry until
 *     the claimant settles (`delivered`, `retry`, `deadLetter`) or claims
 *     the sink again; a crashed claimant's lease lapses and another takes
 *     the sink over. Skipping locked *deliveries* instead would let a
 *     second worker send the head's successor first.
 *   - `requeueDeadLetters` decides which dead letters are superseded and
 *     requeues the rest in one step, so a delivery confirmed meanwhile by
 *     another worker is seen.
 * A shared store's other writers do not wake this process's workers; they
 * notice new work within their idle poll (a second), as they notice
 * `placeguard outbox requeue` today.
 *
 * The implementations beside this file: sqlite-outbox-store.ts, and
 * pg-outbox-store.ts (an AsyncOutboxStore, below). Every store passes the
 * same contract, test/delivery/outbox-store.contract.ts.
 *
 * Synchronous, as node:sqlite is, because `Outbox.enqueue` promises the
 * change is durable when it returns and its caller (the collector service,
 * folding alert changes as they happen) does not await. An asynchronous
 * backend fits the same shapes with Promise results (the workers await
 * every step; no answer of the store feeds a second write in the outbox
 * without the store's lock): `Outbox<S>` over an AsyncOutboxStore answers
 * Promises, `enqueue` resolving once the change is durable, and its caller
 * awaits it before it acknowledges what caused the change. Wiring the
 * PostgreSQL store into the collector is app/'s.
 */
import type { Alert } from '../shared/alert-contract.ts'
import type { Promisified } from '../shared/promisified.ts'
import type { AuditRecord, DeliveredChange } from './sink.ts'

/** One alert change for one sink, as the outbox queues it. */
export interface NewDelivery {
  /** Stable across retries and requeues: the receiver's deduplication key. */
  id: string
  sink: string
  alertId: string
  change: DeliveredChange
  alert: Alert
  /** When the change was queued (ms epoch): the order within a sink, ties kept in the order added. */
  createdAtMs: number
}

/**
 * One entry of the operator audit trail for one sink, queued beside the
 * alerts (in the same columns: `change` is `audit`, the body is the
 * entry, and `alertId` is `audit:<seq>`, an id no alert has, so marks and
 * requeues never confuse the two).
 */
export interface NewAuditDelivery {
  id: string
  sink: string
  alertId: string
  change: 'audit'
  audit: AuditRecord
  createdAtMs: number
}


interface Attempts {
  /** Attempts so far. */
  attempts: number
  /** Not to be sent before (ms epoch). */
  nextAttemptAtMs: number
  lastError: string | null
}

export type QueuedDelivery = (NewDelivery & Attempts) | (NewAuditDelivery & Attempts)

/** A row's body as stored, and back: the alert, or the audit entry. */
export function deliveryBody (delivery: NewDelivery | NewAuditDelivery): Alert | AuditRecord {
  return delivery.change === 'audit' ? delivery.audit : delivery.alert
}

/** The fields of a stored row that depend on its kind. */
export function deliveryOfRow (change: string, body: unknown): { change: DeliveredChange, alert: Alert } | { change: 'audit', audit: AuditRecord } {
  return change === 'audit' ? { change, audit: body as AuditRecord } : { change: change as DeliveredChange, alert: body as Alert }
}

/**
 * The head of a sink's queue. `deliveries`: the head and those behind it,
 * in order, at most the `max` asked for, when the head is due; empty
 * otherwise, with `nextAttemptAtMs` the head's next attempt (null: nothing
 * is queued, or another worker holds the sink).
 */
export interface OutboxClaim { deliveries: QueuedDelivery[], nextAttemptAtMs: number | null }

interface DeadLetterFields {
  id: string
  sink: string
  alertId: string
  createdAt: string
  attempts: number
  lastError: string | null
}

export type DeadLetter = (DeadLetterFields & { change: DeliveredChange, alert: Alert }) | (DeadLetterFields & { change: 'audit', audit: AuditRecord })

/** A dead letter dropped at requeue because a newer change of its alert was delivered or is queued. */
export interface SupersededDelivery { id: string, sink: string, change: string }

export interface OutboxStore {
  /**
   * Queues the deliveries, all or none; durable on return. Each becomes due
   * at once. An empty list stores nothing (the outbox calls it so once, to
   * learn whether the store answers Promises).
   *
   * Idempotent by id: a delivery whose id is queued or dead-lettered
   * already is skipped, so adding again after an answer that was lost (a
   * connection dropped after the commit) queues nothing twice. With
   * `unlessDelivered`, a delivery is also skipped when its sink confirmed
   * any change of its alert: how a collector that takes over a partition
   * queues an alert's `opened` that its previous reader may or may not
   * have queued before it died.
   */
  add: (deliveries: Array<NewDelivery | NewAuditDelivery>, options?: { unlessDelivered?: boolean }) => void
  /** Takes the head of `sink`'s pending queue, at most `max` deliveries, when its first is due at `nowMs` (see OutboxClaim). */
  claim: (sink: string, max: number, nowMs: number) => OutboxClaim
  /**
   * The sink confirmed these: they leave the queue, and the sink's newest
   * confirmed change of each alert is remembered (see `requeueDeadLetters`).
   * With `forgetMarksBeforeMs`, marks of changes queued before it are
   * forgotten in the same step.
   */
  delivered: (deliveries: QueuedDelivery[], forgetMarksBeforeMs?: number) => void
  /** A failed attempt: one more attempt counted, the error kept, not due before `nextAttemptAtMs`; still at the head. */
  retry: (deliveries: QueuedDelivery[], nextAttemptAtMs: number, error: string) => void
  /** Refused for good: one more attempt counted, the error kept, moved to the dead-letter list. */
  deadLetter: (deliveries: QueuedDelivery[], error: string) => void
  /** Moves `sink`'s pending deliveries queued at or before `queuedAtOrBeforeMs` to the dead-letter list; answers how many. */
  deadLetterOverdue: (sink: string, queuedAtOrBeforeMs: number) => number
  /** The dead-letter list (all, or one sink's), oldest first. */
  deadLetters: (sink?: string) => DeadLetter[]
  /**
   * Puts dead letters (all, or one sink's) back at the tail of their
   * queues, due and queued at `nowMs`, keeping their ids, attempts and
   * order. A dead letter whose alert has a newer change that its sink
   * confirmed, or that is queued for it, is superseded instead: deleted,
   * and answered in `superseded`.
   */
  requeueDeadLetters: (sink: string | undefined, nowMs: number) => { requeued: number, superseded: SupersededDelivery[] }
  /** Pending and dead-lettered deliveries per sink (sinks with neither may be absent). */
  sizes: () => Map<string, { pending: number, deadLettered: number }>
  close: () => void
}

/**
 * The same store shared by a collector group (PostgreSQL,
 * pg-outbox-store.ts): each method one transaction, answered by a Promise;
 * `claim` exclusive per sink as described above.
 */
export type AsyncOutboxStore = Promisified<OutboxStore>
