import { describe, expect, it } from 'vitest'
import { createMqEmitter, RingQueue } from '../../broker/mq-fast-queue.ts'

describe('RingQueue', () => {
  it('is a FIFO through growth, wrap-around and shrinking', () => {
    const queue = new RingQueue<number>(4)
    const expected: number[] = []
    let next = 0
    // Interleave pushes and shifts so the head wraps many times while the queue grows to 50k and drains.
    for (let round = 0; round < 50_000; round++) {
      queue.push(next); expected.push(next++)
      queue.push(next); expected.push(next++)
      expect(queue.shift()).toBe(expected.shift())
    }
    expect(queue.length).toBe(50_000)
    while (queue.length > 0) expect(queue.shift()).toBe(expected.shift())
    expect(queue.shift()).toBeUndefined()
    expect(expected).toEqual([])
  })
})

describe('createMqEmitter', () => {
  it('installs the ring queue on the pinned mqemitter and delivers in order past its concurrency', async () => {
    const warnings: string[] = []
    const onWarning = (w: Error): void => { warnings.push(w.message) }
    process.on('warning', onWarning)
    const mq = createMqEmitter({ concurrency: 2 })
    process.off('warning', onWarning)
    expect(warnings).toEqual([])
    expect((mq as unknown as { _messageQueue: unknown })._messageQueue).toBeInstanceOf(RingQueue)
    const seen: number[] = []
    const pending: Array<() => void> = []
    // Listeners that complete later force messages into the wait queue.
    mq.on('t/#', (message, done) => { seen.push(message.n as number); pending.push(done) })
    await new Promise((resolve) => setImmediate(resolve))
    for (let n = 0; n < 1000; n++) mq.emit({ topic: 't/x', n })
    expect((mq as unknown as { length: number }).length).toBe(998)
    while (pending.length > 0) pending.shift()!()
    expect(seen).toEqual(Array.from({ length: 1000 }, (_, n) => n))
  })
})
