/**
 * Drains the spool into the store, oldest points first, one write in
 * flight. A point leaves the spool only after the store accepted it; on any
 * other answer the writer backs off and sends the same batch again, so an
 * outage or a wrong token delays telemetry but never loses it.
 */
import { systemClock, type Clock } from '../shared/clock.ts'
import type { Spool } from './spool.ts'
import type { PointSink, WriteResult } from './stored-point.ts'

export type FailedOutcome = Exclude<WriteResult['outcome'], 'success'>

export interface StoreWriterOptions {
  spool: Pick<Spool, 'peek' | 'remove'>
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
  clock?: Clock
  /** In [0, 1): the jitter source. */
  random?: () => number
}

export interface StoreWriterCounters {
  /** Points the store accepted. */
  written: number
  /** Failed write attempts. */
  writeErrors: number
  lastWriteLatencyMs: number | undefined
  lastError: string | undefined
}

interface Sleeper { wake: () => void, byKick: boolean }

export class StoreWriter {
  readonly #options: Required<Omit<StoreWriterOptions, 'onError'>> & Pick<StoreWriterOptions, 'onError'>
  readonly #counters: StoreWriterCounters = { written: 0, writeErrors: 0, lastWriteLatencyMs: undefined, lastError: undefined }
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
      }
      return result
    } catch (error) {
      // The spool's disk, or a sink that broke its promise not to throw: try again later.
      return { outcome: 'retryable', error: `store writer: ${(error as Error).message}` }
    }
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
