/**
 * Drains the spool into the store, oldest points first, one write in
 * flight. A point leaves the spool only after the store accepted it; on any
 * other answer the writer backs off and sends the same batch again, so an
 * outage or a wrong token delays telemetry but never loses it.
 *
 * One exception keeps a single bad point from blocking the FIFO for ever:
 * when the store refuses the *data* (HTTP 400, 413, 422 — e.g. InfluxDB's
 * field type conflict, which also writes the rest of the batch), the batch
 * is bisected until the refused points are isolated; those move to the
 * spool's rejected table (kept, counted, logged) and the rest is written.
 * Rewriting accepted points is harmless: a point is identified by series
 * and timestamp.
 */
import { systemClock, type Clock } from '../shared/clock.ts'
import type { TelemetrySpool } from './telemetry-spool.ts'
import type { PointSink, StoredPoint, WriteResult } from './stored-point.ts'

export type FailedOutcome = Exclude<WriteResult['outcome'], 'success'>

/** Statuses by which a store refuses the data itself, not the request or the caller. */
const DATA_REFUSED = new Set([400, 413, 422])

export interface StoreWriterOptions {
  spool: Pick<TelemetrySpool, 'peek' | 'remove'>
  sink: Pick<PointSink, 'write'>
  /** Most points per write; default 5000, the batch InfluxDB documents. */
  batchSize?: number
  /** Back-off after the first failed write, doubled after each further one; default 500 ms. */
  baseDelayMs?: number
  /** Longest back-off, and longest wait a Retry-After may impose; default 30 s. */
  maxDelayMs?: number
  /** How often an idle writer looks at the spool when nobody kicks it; default 1 s. */
  idlePollMs?: number
  /**
   * Told about every failed attempt; the caller logs it. `failure` (bad token,
   * missing bucket, rejected data) needs an operator; it is retried all the same.
   */
  onError?: (message: string, outcome: FailedOutcome) => void
  /** Told when points the store refused for good were set aside (rejected of total in the batch, and the store's reason). */
  onRejected?: (rejected: number, total: number, reason: string) => void
  clock?: Clock
  /** In [0, 1): the jitter source. */
  random?: () => number
}

export interface StoreWriterCounters {
  /** Points the store accepted. */
  written: number
  /** Failed write attempts. */
  writeErrors: number
  /** Points the store refused for good, set aside in the spool's rejected table. */
  rejected: number
  lastWriteLatencyMs: number | undefined
  lastError: string | undefined
}

interface Sleeper { wake: () => void, byKick: boolean }

export class StoreWriter {
  readonly #options: Required<Omit<StoreWriterOptions, 'onError' | 'onRejected'>> & Pick<StoreWriterOptions, 'onError' | 'onRejected'>
  readonly #counters: StoreWriterCounters = { written: 0, writeErrors: 0, rejected: 0, lastWriteLatencyMs: undefined, lastError: undefined }
  #loop: Promise<void> | undefined
  #stopping = false
  #sleeper: Sleeper | undefined

  constructor (options: StoreWriterOptions) {
    this.#options = {
      batchSize: 5_000, baseDelayMs: 500, maxDelayMs: 30_000, idlePollMs: 1_000,
      clock: systemClock, random: Math.random, ...options,
    }
  }

  get counters (): Readonly<StoreWriterCounters> {
    return { ...this.#counters }
  }

  start (): void {
    if (this.#loop) return
    this.#stopping = false
    this.#loop = this.#run()
  }

  /** Drain now (after an append) instead of at the next idle poll; a back-off is not cut short. */
  kick (): void {
    if (this.#sleeper?.byKick) this.#sleeper.wake()
  }

  /** Lets the write in flight finish (and its points leave the spool), then stops. */
  async stop (): Promise<void> {
    this.#stopping = true
    this.#sleeper?.wake()
    await this.#loop
    this.#loop = undefined
  }

  async #run (): Promise<void> {
    let failures = 0
    while (!this.#stopping) {
      const result = await this.#drainOne()
      if (result === 'idle') {
        await this.#sleep(this.#options.idlePollMs, true)
      } else if (result.outcome === 'success') {
        failures = 0
      } else {
        failures++
        this.#counters.writeErrors++
        this.#counters.lastError = result.error
        this.#options.onError?.(result.error, result.outcome)
        await this.#sleep(this.#backoffMs(failures, result), false)
      }
    }
  }

  async #drainOne (): Promise<WriteResult | 'idle'> {
    const { spool, sink, clock, batchSize } = this.#options
    try {
      const batch = spool.peek(batchSize)
      if (!batch) return 'idle'
      const started = clock.now()
      const result = await sink.write(batch.points)
      this.#counters.lastWriteLatencyMs = clock.now() - started
      if (result.outcome === 'success') {
        spool.remove(batch.uptoId)
        this.#counters.written += batch.points.length
      } else if (result.outcome === 'failure' && result.status !== undefined && DATA_REFUSED.has(result.status)) {
        const isolated = await this.#isolate(batch.points, result)
        if (isolated.outcome !== 'isolated') return isolated
        spool.remove(batch.uptoId, isolated.rejected)
        this.#counters.written += batch.points.length - isolated.rejected.length
        this.#counters.rejected += isolated.rejected.length
        this.#options.onRejected?.(isolated.rejected.length, batch.points.length, isolated.rejected[0]?.reason ?? result.error)
        return { outcome: 'success' }
      }
      return result
    } catch (error) {
      // The spool's disk, or a sink that broke its promise not to throw: try again later.
      return { outcome: 'retryable', error: `store writer: ${(error as Error).message}` }
    }
  }

  /**
   * Halves a refused batch until the refused points stand alone. Any answer
   * other than success or a data refusal (an outage mid-way) stops the
   * search: the whole batch is retried later.
   */
  async #isolate (points: StoredPoint[], refusal: Extract<WriteResult, { outcome: 'failure' }>): Promise<{ outcome: 'isolated', rejected: Array<{ point: StoredPoint, reason: string }> } | Exclude<WriteResult, { outcome: 'success' }>> {
    if (points.length === 1) return { outcome: 'isolated', rejected: [{ point: points[0]!, reason: refusal.error }] }
    const middle = Math.ceil(points.length / 2)
    const rejected: Array<{ point: StoredPoint, reason: string }> = []
    for (const half of [points.slice(0, middle), points.slice(middle)]) {
      const result = await this.#options.sink.write(half)
      if (result.outcome === 'success') continue
      if (result.outcome !== 'failure' || result.status === undefined || !DATA_REFUSED.has(result.status)) return result
      const inner = await this.#isolate(half, result)
      if (inner.outcome !== 'isolated') return inner
      rejected.push(...inner.rejected)
    }
    return { outcome: 'isolated', rejected }
  }

  /** Exponential with "equal jitter": never under half the step, so retries never hammer, yet spread out. */
  #backoffMs (failures: number, result: Exclude<WriteResult, { outcome: 'success' }>): number {
    const { baseDelayMs, maxDelayMs, random } = this.#options
    const step = Math.min(maxDelayMs, baseDelayMs * 2 ** (failures - 1))
    const delay = step / 2 + random() * step / 2
    const retryAfterMs = 'retryAfterMs' in result ? result.retryAfterMs ?? 0 : 0
    return Math.max(delay, Math.min(retryAfterMs, maxDelayMs))
  }

  #sleep (ms: number, byKick: boolean): Promise<void> {
    return new Promise((resolve) => {
      // Unref'd: the spool is durable, so a pending retry need not keep the process alive.
      const timer = setTimeout(() => wake(), ms).unref()
      const wake = (): void => {
        clearTimeout(timer)
        this.#sleeper = undefined
        resolve()
      }
      this.#sleeper = { wake, byKick }
    })
  }
}
