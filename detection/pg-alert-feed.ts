/**
 * The alert changes of the whole collector group, read from PostgreSQL as
 * they commit: what makes an operator's acknowledge through one collector's
 * API show in every collector's live stream. db/migrations/0002_alert_feed.sql
 * has each change notify channel `placeguard_alert_changes` on commit and
 * records the transaction that wrote it (`xact_id`).
 *
 * One dedicated connection (not the pool's: LISTEN belongs to a session)
 * LISTENs. A notification only wakes the feed; it then reads what
 * committed since its last read. Its position is a snapshot
 * (pg_current_snapshot()), not a seq: `seq` is drawn at insert and
 * transactions commit in another order (alert_changes' comment), so
 * "seq > the last one seen" would skip a change with a lower seq that
 * committed after it. A read takes the changes whose transaction the last
 * snapshot did not see and a new one does, in pages, and then moves the
 * position to the new snapshot.
 *
 * What it guarantees, from `start` on, while it runs:
 *   - Every change that is news (not an `updated` repeat, which the live
 *     stream never showed) reaches `onChange` once: no duplicates, no
 *     misses, across a lost connection or a restarted server. After a loss
 *     it reconnects with back-off, LISTENs again, and the next read takes
 *     whatever committed meanwhile; a read cut off midway resumes after the
 *     last change it handed on, within the same snapshot.
 *   - One alert's changes come in their order (seq order: they are written
 *     under the alert's row lock, so one alert's seq order is its commit
 *     order). Across alerts there is no order to promise.
 *   - A notification lost, or a connection dead without a word, costs
 *     latency, not changes: the feed also reads every `pollMs`, and a read
 *     that fails counts as a lost connection.
 *   - Memory stays bounded however much it missed: a read goes in pages of
 *     `pageSize`. It hands on all of it (the live stream drops a client
 *     that cannot keep up, which then reconnects and reloads).
 *   - A notification it does not understand (anyone with access to the
 *     database may NOTIFY on the channel) is counted, logged and skipped;
 *     a listener that throws is logged; neither stops the feed.
 * Not promised: changes from before `start` (a new process starts at
 * "now"; the dashboard loads the list itself), and those of an alert
 * deleted (expired) before they were read.
 */
import type { Client, Notification } from 'pg'
import { z } from 'zod'
import type { AlertChange } from '../shared/alert-contract.ts'
import type { Logger } from '../shared/logger.ts'
import { parse as storedAlert } from './pg-alert-store.ts'

/** The channel 0002_alert_feed.sql notifies on. */
export const ALERT_FEED_CHANNEL = 'placeguard_alert_changes'

const CHANGES = ['opened', 'updated', 'acknowledged', 'resolved', 'response', 'commented'] as const
const payloadSchema = z.object({ seq: z.number().int().positive(), alertId: z.string().min(1).max(200), change: z.enum(CHANGES) })

const MAX_RETRY_MS = 30_000

/**
 * One page of a read: the news-worthy changes whose transaction $1 (the
 * position) did not see and $2 (the read's snapshot) does, after seq $3.
 * The xact_id bounds let the partial index alert_changes_feed find them;
 * pg_visible_in_snapshot does the exact test (a transaction below xmax may
 * still have been running: it is in the snapshot's list). `seq` is a
 * bigint, which pg hands over as a string; the ORDER BY must sort the
 * column, not a text form of it (where '10' < '9').
 */
const PAGE = `
SELECT seq, change, alert FROM alert_changes
WHERE change <> 'updated'
  AND xact_id >= pg_snapshot_xmin($1::pg_snapshot) AND xact_id < pg_snapshot_xmax($2::pg_snapshot)
  AND NOT pg_visible_in_snapshot(xact_id, $1::pg_snapshot) AND pg_visible_in_snapshot(xact_id, $2::pg_snapshot)
  AND seq > $3::bigint
ORDER BY seq
LIMIT $4`

export interface PgAlertFeedOptions {
  /** Opens the feed's own connection (db's connectDatabaseClient), connected; called again after each loss. The feed ends it. */
  connect: () => Promise<Client>
  /** Each change of the group that is news, once (see above). Called synchronously; a throw is logged and the feed goes on. */
  onChange: (change: AlertChange) => void
  logger: Logger
  /** First reconnect delay (ms), doubled each failed attempt up to 30 s; default 500. */
  retryMs?: number
  /** The feed reads this often even without a notification (ms); default 30 s. */
  pollMs?: number
  /** Changes read per query at most; default 500. */
  pageSize?: number
}

export interface PgAlertFeedCounters {
  /** Changes handed to `onChange`. */
  changes: number
  /** Notifications on the channel that were not ours to understand, skipped. */
  badNotifications: number
  /** Connections lost (and re-established, or being). */
  connectionsLost: number
}

export class PgAlertFeed {
  readonly counters: PgAlertFeedCounters = { changes: 0, badNotifications: 0, connectionsLost: 0 }
  readonly #options: PgAlertFeedOptions
  readonly #retryMs: number
  readonly #pageSize: number
  #client: Client | undefined
  /** The snapshot (text form) the feed has read up to. */
  #position: string | undefined
  /** A read under way: its snapshot, and the last seq handed on. Kept across a lost connection so the read resumes without repeats. */
  #window: { to: string, afterSeq: string } | undefined
  /** The read under way; it never rejects (a failed read is a lost connection). */
  #reading: Promise<void> | undefined
  #readAgain = false
  #opening: Promise<void> | undefined
  #retryTimer: NodeJS.Timeout | undefined
  #pollTimer: NodeJS.Timeout | undefined
  #delayMs: number
  #stopped = false

  constructor (options: PgAlertFeedOptions) {
    this.#options = options
    this.#retryMs = options.retryMs ?? 500
    this.#delayMs = this.#retryMs
    this.#pageSize = options.pageSize ?? 500
  }

  /** Whether the feed's connection is up (it reconnects by itself when not). */
  get connected (): boolean {
    return this.#client !== undefined
  }

  /** Connects and LISTENs; changes committed from now on are handed on. Rejects when the first connection fails. */
  async start (): Promise<void> {
    await this.#open()
    this.#pollTimer = setInterval(() => this.#wake(), this.#options.pollMs ?? 30_000)
    this.#pollTimer.unref()
  }

  async stop (): Promise<void> {
    this.#stopped = true
    clearInterval(this.#pollTimer)
    clearTimeout(this.#retryTimer)
    await this.#opening?.catch(() => {})
    const client = this.#client
    this.#client = undefined
    await client?.end().catch(() => {})
    await this.#reading
  }

  #open (): Promise<void> {
    this.#opening = this.#connect().finally(() => { this.#opening = undefined })
    return this.#opening
  }

  async #connect (): Promise<void> {
    const client = await this.#options.connect()
    client.on('notification', (message) => this.#onNotification(message))
    client.on('error', (error) => this.#lost(client, error))
    client.on('end', () => this.#lost(client, new Error('the connection ended')))
    try {
      // LISTEN before the position is taken: a change committed after it wakes the feed.
      await client.query(`LISTEN ${ALERT_FEED_CHANNEL}`)
      this.#position ??= (await client.query<{ snapshot: string }>('SELECT pg_current_snapshot()::text AS snapshot')).rows[0]!.snapshot
    } catch (error) {
      await client.end().catch(() => {})
      throw error
    }
    if (this.#stopped) {
      await client.end().catch(() => {})
      return
    }
    this.#client = client
    // What committed while the feed was away (nothing, the first time).
    this.#wake()
  }

  #onNotification (message: Notification): void {
    if (message.channel !== ALERT_FEED_CHANNEL) return
    let payload: unknown
    try {
      payload = JSON.parse(message.payload ?? '')
    } catch {
      payload = undefined
    }
    if (!payloadSchema.safeParse(payload).success) {
      this.counters.badNotifications++
      if (this.counters.badNotifications === 1 || this.counters.badNotifications % 1000 === 0) {
        this.#options.logger.warn({ payload: String(message.payload).slice(0, 200), fromPid: message.processId, skipped: this.counters.badNotifications },
          `alert feed: a notification on ${ALERT_FEED_CHANNEL} is not a change's {seq, alertId, change}; skipped`)
      }
      return
    }
    this.#wake()
  }

  /** Reads what committed, now or right after the read under way (many notifications, one more read). */
  #wake (): void {
    const client = this.#client
    if (!client || this.#stopped) return
    if (this.#reading) {
      this.#readAgain = true
      return
    }
    this.#readAgain = false
    this.#reading = this.#readOnce(client).finally(() => {
      this.#reading = undefined
      // Woken meanwhile, perhaps by a new connection after this one failed.
      if (this.#readAgain) this.#wake()
    })
  }

  async #readOnce (client: Client): Promise<void> {
    try {
      await this.#read(client)
    } catch (error) {
      this.#lost(client, error as Error)
    }
  }

  async #read (client: Client): Promise<void> {
    this.#window ??= { to: (await client.query<{ snapshot: string }>('SELECT pg_current_snapshot()::text AS snapshot')).rows[0]!.snapshot, afterSeq: '0' }
    const window = this.#window
    for (;;) {
      const { rows } = await client.query<{ seq: string, change: AlertChange['change'], alert: AlertChange['alert'] }>(PAGE, [this.#position, window.to, window.afterSeq, this.#pageSize])
      for (const row of rows) {
        if (this.#stopped) return
        window.afterSeq = row.seq
        this.#emit({ change: row.change, alert: storedAlert(row.alert) })
      }
      if (rows.length < this.#pageSize) break
    }
    this.#position = window.to
    this.#window = undefined
  }

  #emit (change: AlertChange): void {
    this.counters.changes++
    try {
      this.#options.onChange(change)
    } catch (error) {
      this.#options.logger.error({ alert: change.alert.id, change: change.change, err: (error as Error).message }, 'alert feed: a listener failed on a change')
    }
  }

  /** The connection failed (or a read on it did): end it and reconnect after a back-off. */
  #lost (client: Client, error: Error): void {
    if (this.#stopped || client !== this.#client) return
    this.#client = undefined
    this.counters.connectionsLost++
    this.#options.logger.error({ err: error.message, retryInMs: this.#delayMs }, 'alert feed: database connection lost; reconnecting, then catching up on what committed meanwhile')
    client.end().catch(() => {})
    this.#reconnectLater()
  }

  #reconnectLater (): void {
    if (this.#stopped || this.#retryTimer) return
    const delayMs = this.#delayMs
    this.#delayMs = Math.min(delayMs * 2, MAX_RETRY_MS)
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined
      this.#open().then(() => {
        if (this.#stopped) return
        this.#delayMs = this.#retryMs
        this.#options.logger.info({}, 'alert feed: reconnected; catching up')
      }, (error: Error) => {
        this.#options.logger.warn({ err: error.message, retryInMs: this.#delayMs }, 'alert feed: reconnect failed; trying again')
        this.#reconnectLater()
      })
    }, delayMs)
  }
}
