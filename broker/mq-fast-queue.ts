/**
 * mqemitter with an O(1) wait queue — the first half of the fix for aedes
 * turning quadratic under one fast TLS publisher (docs/broker.md, "The aedes fix").
 *
 * mqemitter parks messages beyond `concurrency` in two Arrays and takes them
 * back with Array#shift, which V8 does in O(n) once an array's backing store
 * is in large-object space (> ~16k entries): a long queue made every
 * dequeue cost the whole queue. Relies on mqemitter internals
 * `_messageQueue` and `_messageCallbacks` (only push(), shift() and .length
 * are used on them); upstream, the same ring buffer would replace them.
 */
import mqemitter from 'mqemitter'

/** FIFO ring buffer with the Array subset mqemitter uses: push, shift, length. */
export class RingQueue<T> {
  #buf: Array<T | undefined>
  #head = 0
  #size = 0

  constructor (capacity = 64) {
    let c = 16
    while (c < capacity) c *= 2
    this.#buf = new Array<T | undefined>(c)
  }

  get length (): number { return this.#size }

  push (value: T): number {
    if (this.#size === this.#buf.length) this.#resize(this.#buf.length * 2)
    this.#buf[(this.#head + this.#size) & (this.#buf.length - 1)] = value
    return ++this.#size
  }

  shift (): T | undefined {
    if (this.#size === 0) return undefined
    const value = this.#buf[this.#head]
    this.#buf[this.#head] = undefined // drop the reference for the GC
    this.#head = (this.#head + 1) & (this.#buf.length - 1)
    this.#size--
    // give memory back after a burst: shrink when 1/8 full (never below 1024)
    if (this.#buf.length > 1024 && this.#size <= this.#buf.length >>> 3) this.#resize(this.#buf.length >>> 1)
    return value
  }

  #resize (capacity: number): void {
    const next = new Array<T | undefined>(capacity)
    const mask = this.#buf.length - 1
    for (let i = 0; i < this.#size; i++) next[i] = this.#buf[(this.#head + i) & mask]
    this.#buf = next
    this.#head = 0
  }
}

export interface MqEmitterOptions {
  concurrency?: number
  matchEmptyLevels?: boolean
  separator?: string
  wildcardOne?: string
  wildcardSome?: string
}

type Internals = { _messageQueue: unknown, _messageCallbacks: unknown }

/** mqemitter with an O(1) wait queue; same API and options as `mqemitter(opts)`. */
export function createMqEmitter (opts: MqEmitterOptions = {}): mqemitter.MQEmitter {
  // aedes passes matchEmptyLevels: true to its default mqemitter [MQTT-4.7.1-3]; keep that default
  return installFastQueue(mqemitter({ matchEmptyLevels: true, ...opts }))
}

/**
 * Gives an mqemitter (or one built on it, such as mqemitter-redis, which
 * inherits the same queue) the O(1) wait queue, before it has queued anything.
 */
export function installFastQueue<T extends object> (mq: T): T {
  const internals = mq as unknown as Internals
  if (Array.isArray(internals._messageQueue) && Array.isArray(internals._messageCallbacks) &&
      internals._messageQueue.length === 0 && internals._messageCallbacks.length === 0) {
    internals._messageQueue = new RingQueue()
    internals._messageCallbacks = new RingQueue()
  } else {
    process.emitWarning('mqemitter internals changed; O(1) queue not installed', { code: 'PG_MQ_FAST_QUEUE' })
  }
  return mq
}
