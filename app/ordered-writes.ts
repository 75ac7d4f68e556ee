/**
 * Writes to a store that must all land, in the order they were asked for,
 * through the store's outages: each is retried with back-off (500 ms
 * doubling to 30 s) before the next starts. Used for the alert deliveries a
 * collector queues in its outbox: the group's PostgreSQL, whose outages
 * every write goes through this queue for, or the embedded SQLite, whose
 * writes run at once unless one failed (a full disk). The outbox answers a
 * failed enqueue by storing nothing, and the caller keeps the change and
 * tries again (delivery/outbox.ts); a retried enqueue of the same change is
 * harmless (its delivery ids are derived from it).
 *
 * `settled` is the barrier the cluster ingest waits on before it
 * acknowledges entries: everything asked for so far has landed.
 */
import type { Logger } from '../shared/logger.ts'

const FIRST_RETRY_MS = 500
const MAX_RETRY_MS = 30_000

export class OrderedWrites {
  readonly #logger: Logger
  readonly #what: string
  #tail: Promise<void> = Promise.resolve()
  #pending = 0
  #stopped = false
  #wakeOnStop: () => void = () => {}
  readonly #stopping = new Promise<void>((resolve) => { this.#wakeOnStop = resolve })
  /** Failed attempts that were retried. */
  retried = 0
  /** Writes given up at stop while the store still refused them. */
  abandoned = 0

  constructor (options: { logger: Logger, what: string }) {
    this.#logger = options.logger
    this.#what = options.what
  }

  /** Writes waiting or in flight. */
  get pending (): number {
    return this.#pending
  }

  push (write: () => Promise<unknown>): void {
    this.#pending++
    const attempt = async (): Promise<void> => {
      for (let delayMs = FIRST_RETRY_MS; ; delayMs = Math.min(delayMs * 2, MAX_RETRY_MS)) {
        try {
          await write()
          return
        } catch (error) {
          if (this.#stopped) {
            this.abandoned++
            this.#logger.error({ err: (error as Error).message }, `${this.#what}: given up at stop while the store refused it`)
            return
          }
          this.retried++
          this.#logger.error({ err: (error as Error).message, retryInMs: delayMs, pending: this.#pending }, `${this.#what} failed; retrying in order, nothing is dropped`)
          let timer: NodeJS.Timeout | undefined
          await Promise.race([new Promise((resolve) => { timer = setTimeout(resolve, delayMs) }), this.#stopping])
          clearTimeout(timer)
        }
      }
    }
    this.#tail = this.#tail.then(attempt).finally(() => { this.#pending-- })
  }

  /**
   * A synchronous write (SQLite: durable on return): run now when no write
   * waits. If it throws (a full disk), or writes wait, it is pushed and
   * retried in order as `push`; nothing is thrown at the caller.
   */
  runOrPush (write: () => unknown): void {
    if (this.#pending === 0) {
      try {
        write()
        return
      } catch {
        // Tried again at once by push, whose failure is logged.
      }
    }
    this.push(async () => { write() })
  }

  /** Resolves once every write pushed so far has landed (or was given up at stop). */
  settled (): Promise<void> {
    return this.#tail
  }

  /** Stops retrying: each write still waiting is tried once more, and given up (logged, counted) if it fails. */
  async stop (): Promise<void> {
    this.#stopped = true
    this.#wakeOnStop()
    await this.#tail
  }
}
