/**
 * Following a value the CA's side keeps in Redis (the CRL, suppliers'
 * grants): read at start, again at each announcement on its channel, and
 * every `pollMs` so that a missed announcement (Redis restarted, the node
 * reconnecting) is made good. One read at a time; an announcement that
 * arrives during a read is read again after it, since the read in flight
 * may predate the change.
 */
import type { Redis } from './redis.ts'

export interface AnnouncedKeyOptions {
  /** A connection in subscriber mode (it can do nothing else). */
  subscriber: Redis
  channel: string
  pollMs: number
  /** Reads and applies the value; `announced` when an announcement asked for it. Never rejects: it logs. */
  read: (announced: boolean) => Promise<void>
}

export class AnnouncedKey {
  readonly #options: AnnouncedKeyOptions
  #timer: NodeJS.Timeout | undefined
  #running: Promise<void> | undefined
  /** An announcement came during the read in flight: read again after it. */
  #again = false

  constructor (options: AnnouncedKeyOptions) {
    this.#options = options
  }

  async start (): Promise<void> {
    const { subscriber, channel, pollMs, read } = this.#options
    subscriber.on('message', (heard: string) => { if (heard === channel) this.#check(true) })
    await subscriber.subscribe(channel)
    await read(false)
    this.#timer = setInterval(() => this.#check(false), pollMs)
    this.#timer.unref()
  }

  async stop (): Promise<void> {
    clearInterval(this.#timer)
    await this.#running
  }

  #check (announced: boolean): void {
    if (this.#running) {
      if (announced) this.#again = true
      return
    }
    this.#running = this.#options.read(announced).finally(() => {
      this.#running = undefined
      if (this.#again) {
        this.#again = false
        this.#check(true)
      }
    })
  }
}
