/**
 * The collector's durable FIFO of points between the MQTT acknowledgement
 * and the time-series store, as the collector and the store writer see it.
 * A point leaves it only once the store has accepted it, so neither a
 * store outage nor a collector restart loses telemetry.
 *
 * The implementation beside this file: Spool (spool.ts), in SQLite
 * (`<data-dir>/spool.db`). Every spool passes the same contract,
 * test/collector/telemetry-spool.contract.ts. A spool is local to its
 * collector (it holds what this collector acknowledged); a collector group
 * gives each member its own, whatever backs the alerts and the outbox.
 *
 * Synchronous, as node:sqlite is: `append` returning is what lets the
 * collector acknowledge the MQTT messages, and it runs on the receive path
 * with the broker waiting. An asynchronous spool (Redis, say) fits with
 * Promise results and the collector acknowledging when `append` resolves
 * (the deferred acks already wait for a commit), the store writer awaiting
 * `peek` and `remove`; the byte and point counts stay synchronous
 * properties, kept by the spool as it appends and removes.
 */
import { PlaceGuardError } from '../shared/errors.ts'
import type { StoredPoint } from './stored-point.ts'

export interface SpoolBatch {
  /** Pass to `remove` once the points are stored. */
  uptoId: number
  points: StoredPoint[]
}

/** A point the store refused for good, set aside by `remove`. */
export interface RejectedPoint { point: StoredPoint, reason: string, at: string }

/** Thrown by `append` when the batch would not fit: nothing of it was stored. */
export class SpoolFullError extends PlaceGuardError {
  constructor (message: string) {
    super('PG_ERR_SPOOL_FULL', message, { field: 'collector.spoolMaxBytes', hint: 'the store has been unreachable for long; messages stay at the broker meanwhile' })
    this.name = 'SpoolFullError'
  }
}

export interface TelemetrySpool {
  /** Largest total of stored JSON bytes; an append beyond it throws SpoolFullError. */
  readonly maxBytes: number
  /** Where the points are kept, for messages (the SQLite file). */
  readonly path: string
  readonly pendingPoints: number
  /** UTF-8 bytes of the stored points' JSON: what `maxBytes` bounds. */
  readonly bytes: number
  /** At least 90 % of `maxBytes` used. */
  readonly nearFull: boolean
  /**
   * Stores the whole batch durably, or nothing: SpoolFullError past the
   * bound, another error when the storage fails. Refuses, before storing
   * any of the batch, a point the store could never accept. Gives each
   * event point (not telemetry) without one an `ordinalNs`, so events of
   * one series in one millisecond stay apart.
   */
  append: (points: StoredPoint[]) => void
  /** The oldest points, at most `maxPoints`, without removing them; undefined when empty. */
  peek: (maxPoints: number) => SpoolBatch | undefined
  /**
   * Forgets every point up to and including `uptoId` (ids are never
   * reused, so a stale `uptoId` cannot reach points appended later); the
   * `rejected` ones are kept aside in the same step instead of vanishing.
   */
  remove: (uptoId: number, rejected?: Array<{ point: StoredPoint, reason: string }>) => void
  /** Points the store refused for good, oldest first. */
  rejected: (limit?: number) => RejectedPoint[]
  readonly rejectedPoints: number
  close: () => void
}
