/**
 * A group of collectors sharing the partitions through leases with fencing
 * tokens, against a real redis-server: the Lua scripts' contracts, the
 * balance (one collector holds every partition, two split them), a holder
 * killed with SIGKILL (another takes its partitions and claims its batch
 * within 15 s), a holder frozen with SIGSTOP past its lease (its write and
 * acknowledgement refused, its batch stored once by the new holder), and
 * entries left pending by a stale holder's late read swept up.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  assignPartitions, clusterKeys, COLLECTOR_GROUP, connectRedis, PartitionLeases, partitionOf, type Redis, StreamHandoff, type StreamEntry, StreamReader,
} from '../../cluster/index.ts'
import { LEASE_SCRIPTS } from '../../cluster/partition-leases.ts'
import { createLogger } from '../../shared/logger.ts'
import { waitFor } from '../helpers/broker.ts'
import { startRedis, type RunningRedis } from '../helpers/redis-server.ts'

const logger = createLogger({ level: 'silent' })
let server: RunningRedis
const connections: Redis[] = []
const children: ChildProcess[] = []
const connect = (name = 'test', blocking = false): Redis => {
  const redis = connectRedis({ url: server.url, name, logger, blocking })
  connections.push(redis)
  return redis
}
let prefixCount = 0
const freshKeys = () => clusterKeys(`lease${++prefixCount}`)
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const keyOf = (entry: StreamEntry) => `${entry.partition}/${entry.id}`

beforeAll(async () => { server = await startRedis() })
afterAll(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) { child.kill('SIGCONT'); child.kill('SIGKILL') }
  for (const redis of connections) redis.disconnect()
  await server?.stop()
})

const message = (device: string, seq: number) => ({ partitionKey: device, topic: `places/a/flood/${device}/telemetry`, payload: Buffer.from(JSON.stringify({ seq })), node: 'n1', receivedAtMs: seq })

/** A store keyed by entry: how many times each entry was written, and by whom. */
class Store {
  readonly writes = new Map<string, string[]>()
  write (member: string, keys: string[]): void {
    for (const key of keys) this.writes.set(key, [...this.writes.get(key) ?? [], member])
  }

  get twice (): string[] {
    return [...this.writes].filter(([, by]) => by.length > 1).map(([key]) => key)
  }
}

/** An in-process collector of the group: leases, a reader, and a handle that checks its tokens right before it writes. */
function collector (keys: ReturnType<typeof clusterKeys>, member: string, store: Store, options: { partitions: number, ttlMs?: number, renewMs?: number, sweepMs?: number }) {
  const leases = new PartitionLeases({ redis: connect(member), keys, partitions: options.partitions, member, logger,
    ...options.ttlMs ? { ttlMs: options.ttlMs } : {}, ...options.renewMs ? { renewMs: options.renewMs } : {} })
  const handled: StreamEntry[] = []
  const reader = new StreamReader({ redis: connect(`${member}-reader`, true), keys, partitions: options.partitions, consumer: member, logger, leases,
    ...options.sweepMs ? { sweepMs: options.sweepMs } : {},
    handle: async (entries) => {
      const valid = await leases.checkAll(new Map(entries.map((entry) => [entry.partition, entry.token!])))
      if (entries.some((entry) => !valid.has(entry.partition))) throw new Error('lease changed hands: write refused')
      handled.push(...entries)
      store.write(member, entries.map(keyOf))
    } })
  return {
    leases, reader, handled,
    start: async () => { await leases.start(); await reader.start() },
    stop: async () => { await reader.stop(); await leases.stop() },
  }
}

/** A collector as a child process (test/helpers/lease-collector-process.ts), its JSON lines gathered. */
function childCollector (settings: Record<string, unknown>) {
  const child = spawn(process.execPath, [join(import.meta.dirname, '..', 'helpers', 'lease-collector-process.ts'), JSON.stringify({ url: server.url, ...settings })],
    { stdio: ['ignore', 'pipe', 'pipe'] })
  children.push(child)
  const state = { held: [] as number[], inHand: [] as string[][], stored: [] as string[], refused: [] as string[], stderr: '' }
  let buffered = ''
  child.stdout.on('data', (chunk: Buffer) => {
    buffered += chunk.toString()
    const lines = buffered.split('\n')
    buffered = lines.pop()!
    for (const line of lines) {
      const event = JSON.parse(line) as { held?: number[], inHand?: string[], stored?: string[], refused?: string[] }
      if (event.held) state.held = event.held
      if (event.inHand) state.inHand.push(event.inHand)
      if (event.stored) state.stored.push(...event.stored)
      if (event.refused) state.refused.push(...event.refused)
    }
  })
  child.stderr.on('data', (chunk: Buffer) => { state.stderr += chunk.toString() })
  return { child, state }
}

/** Entries appended in one transaction: a collector blocked on the streams is served only once all are in. */
async function appendAtOnce (redis: Redis, keys: ReturnType<typeof clusterKeys>, partitions: number, count: number): Promise<string[]> {
  const multi = redis.multi()
  const streams: number[] = []
  for (let seq = 1; seq <= count; seq++) {
    const { partitionKey, topic, payload, node, receivedAtMs } = message(`d-${seq % 40}`, seq)
    streams.push(partitionOf(partitionKey, partitions))
    multi.xadd(keys.stream(streams.at(-1)!), '*', 't', topic, 'p', payload, 'n', node, 'r', String(receivedAtMs))
  }
  const results = await multi.exec() as Array<[Error | null, string]>
  return results.map(([, id], index) => `${streams[index]}/${id}`)
}

async function pendingTotal (redis: Redis, keys: ReturnType<typeof clusterKeys>, partitions: number): Promise<number> {
  let total = 0
  for (let p = 0; p < partitions; p++) total += Number((await redis.xpending(keys.stream(p), COLLECTOR_GROUP) as [number])[0])
  return total
}

describe('assignPartitions', () => {
  it('gives every partition to one member, at most ceil(partitions / members) each, the same whatever the order members are listed in', () => {
    expect(new Set(assignPartitions(['only'], 16))).toEqual(new Set(['only']))
    const two = assignPartitions(['collector-b', 'collector-a'], 16)
    expect(two).toEqual(assignPartitions(['collector-a', 'collector-b'], 16))
    expect(two.filter((m) => m === 'collector-a')).toHaveLength(8)
    const three = assignPartitions(['c', 'a', 'b'], 16)
    expect(['a', 'b', 'c'].map((m) => three.filter((owner) => owner === m).length).sort()).toEqual([5, 5, 6])
    // A third member joining moves (almost) only what it takes: the others keep the rest.
    expect(three.filter((owner, p) => owner !== 'c' && owner !== assignPartitions(['a', 'b'], 16)[p]).length).toBeLessThanOrEqual(2)
    expect(assignPartitions(['a', 'b', 'c'], 1024).filter((owner) => owner === 'a').length).toBeGreaterThanOrEqual(341)
  })
})

describe('the lease scripts', () => {
  it('take a free lease with a larger token each time it changes hands, renew and release only for the holder with its token, fence XACK', async () => {
    const keys = freshKeys()
    const redis = connect()
    const { ACQUIRE, RENEW, RELEASE, CHECK, FENCED_ACK } = LEASE_SCRIPTS
    const lease = keys.lease(0)
    const acquire = (member: string, ttl = 5_000) => redis.eval(ACQUIRE, 2, lease, keys.leaseToken(0), member, ttl)
    expect(await acquire('a')).toBe(1)
    expect(await redis.hgetall(lease)).toEqual({ owner: 'a', token: '1' })
    expect(await redis.pttl(lease)).toBeGreaterThan(4_000)
    expect(await acquire('b')).toBe('a')
    expect(await redis.eval(RENEW, 1, lease, 'b', 1, 5_000)).toBe(0)
    expect(await redis.eval(RENEW, 1, lease, 'a', 2, 5_000)).toBe(0)
    expect(await redis.eval(RELEASE, 1, lease, 'b', 1)).toBe(0)
    await redis.pexpire(lease, 1_000)
    expect(await redis.eval(RENEW, 1, lease, 'a', 1, 5_000)).toBe(1)
    expect(await redis.pttl(lease)).toBeGreaterThan(4_000)
    // The same member taking it again (its previous run) gets a new token: the old run is fenced.
    expect(await acquire('a')).toBe(2)
    expect(await redis.eval(CHECK, 2, lease, keys.lease(1), 1, 1)).toEqual([0, 0])
    expect(await redis.eval(CHECK, 1, lease, 2)).toEqual([1])
    const handoff = new StreamHandoff({ redis, keys, partitions: 1 })
    await redis.xgroup('CREATE', keys.stream(0), COLLECTOR_GROUP, '0', 'MKSTREAM')
    await handoff.append(message('d', 1))
    const [[, [[id]]]] = await redis.xreadgroup('GROUP', COLLECTOR_GROUP, 'a', 'STREAMS', keys.stream(0), '>') as [[string, [[string]]]]
    expect(await redis.eval(FENCED_ACK, 2, lease, keys.stream(0), 1, COLLECTOR_GROUP, id)).toBe(-1)
    expect(await pendingTotal(redis, keys, 1)).toBe(1)
    expect(await redis.eval(FENCED_ACK, 2, lease, keys.stream(0), 2, COLLECTOR_GROUP, id)).toBe(1)
    expect(await pendingTotal(redis, keys, 1)).toBe(0)
    expect(await redis.eval(RELEASE, 1, lease, 'a', 1)).toBe(0)
    expect(await redis.eval(RELEASE, 1, lease, 'a', 2)).toBe(1)
    expect(await acquire('b', 50)).toBe(3)
    await sleep(100)
    // Expired: free for anyone, and the counter never goes back.
    expect(await acquire('a')).toBe(4)
    expect(await redis.get(keys.leaseToken(0))).toBe('4')
  })
})

describe('a group of collectors', () => {
  it('one collector holds every partition; a second joining splits them 8/8 within seconds, each entry handled exactly once', async ({ annotate }) => {
    const keys = freshKeys()
    const store = new Store()
    const a = collector(keys, 'collector-a', store, { partitions: 16 })
    const b = collector(keys, 'collector-b', store, { partitions: 16 })
    await a.start()
    expect(a.leases.held().size).toBe(16)
    const handoff = new StreamHandoff({ redis: connect(), keys, partitions: 16 })
    const appended: string[] = []
    let producing = true
    const producer = (async () => {
      for (let seq = 1; producing; seq++) {
        const device = `d-${seq % 64}`
        appended.push(`${partitionOf(device, 16)}/${await handoff.append(message(device, seq))}`)
        if (seq % 20 === 0) await sleep(20)
      }
    })()
    await sleep(1_000)
    const joined = performance.now()
    await b.start()
    await waitFor(() => a.leases.held().size === 8 && b.leases.held().size === 8, 10_000, 'an 8/8 split')
    const splitMs = Math.round(performance.now() - joined)
    await sleep(1_000)
    producing = false
    await producer
    await waitFor(() => store.writes.size === appended.length, 10_000, 'every entry handled')
    await annotate(`split 8/8 ${splitMs} ms after the second joined; ${appended.length} entries`)
    expect(splitMs).toBeLessThan(8_000)
    expect(store.twice).toEqual([])
    expect([...store.writes.keys()].sort()).toEqual([...appended].sort())
    expect(a.handled.length).toBeGreaterThan(0)
    expect(b.handled.length).toBeGreaterThan(0)
    // Disjoint: each partition's entries since the split went to its holder only.
    const heldByB = new Set(b.leases.held().keys())
    expect([...a.leases.held().keys()].some((p) => heldByB.has(p))).toBe(false)
    expect(await pendingTotal(connect(), keys, 16)).toBe(0)
    await b.stop()
    // Leaving releases at once: the other takes everything back at its next round.
    await waitFor(() => a.leases.held().size === 16, 5_000, 'a holds all again')
    await a.stop()
  }, 40_000)

  it('takes over from a collector killed with SIGKILL within 15 s, claiming and handling the batch it had in hand', async ({ annotate }) => {
    const keys = freshKeys()
    const redis = connect()
    const store = new Store()
    const survivor = collector(keys, 'survivor', store, { partitions: 16 })
    await survivor.start()
    const victim = childCollector({ prefix: keys.prefix, member: 'victim', partitions: 16, mode: 'hang' })
    await waitFor(() => victim.state.held.length === 8 && survivor.leases.held().size === 8, 15_000, 'an 8/8 split')
    // Then 200 entries at once (one transaction). The victim's first batch is whatever its blocked read was waiting on:
    // all of its partitions' share, or (on a loaded machine, its read issued before it held all 8) part of it.
    const appended = await appendAtOnce(redis, keys, 16, 200)
    await waitFor(() => victim.state.inHand.length > 0, 5_000, 'the victim has a batch in hand')
    const inHand = victim.state.inHand.flat()
    const victims = new Set(victim.state.held)
    const victimsShare = appended.filter((key) => victims.has(Number(key.split('/')[0])))
    expect(inHand.length).toBeGreaterThan(0)
    expect(inHand.filter((key) => !victimsShare.includes(key))).toEqual([])
    await waitFor(() => store.writes.size === appended.length - victimsShare.length, 5_000, 'the survivor stored its own partitions\' entries')
    expect(await pendingTotal(redis, keys, 16)).toBe(inHand.length)
    const killed = performance.now()
    victim.child.kill('SIGKILL')
    await waitFor(() => survivor.leases.held().size === 16, 15_000, 'the survivor holds all 16')
    const takeoverMs = Math.round(performance.now() - killed)
    await waitFor(() => store.writes.size === appended.length, 15_000 - takeoverMs, 'every entry handled')
    const handledMs = Math.round(performance.now() - killed)
    await annotate(`SIGKILL → all 16 partitions held ${takeoverMs} ms, the victim's ${inHand.length} entries in hand handled ${handledMs} ms`)
    expect(handledMs).toBeLessThan(15_000)
    expect(store.twice).toEqual([])
    expect([...store.writes.keys()].sort()).toEqual([...appended].sort())
    const redelivered = new Set(survivor.handled.filter((e) => e.redelivered).map(keyOf))
    expect(inHand.filter((key) => !redelivered.has(key))).toEqual([])
    expect(survivor.reader.counters.claimed).toBe(inHand.length)
    expect(await pendingTotal(redis, keys, 16)).toBe(0)
    await survivor.stop()
  }, 60_000)

  it('refuses the writes of a holder frozen past its lease (SIGSTOP); the new holder stores its batch, each entry once', async ({ annotate }) => {
    const keys = freshKeys()
    const redis = connect()
    const timing = { ttlMs: 3_000, renewMs: 1_000 }
    const handoff = new StreamHandoff({ redis, keys, partitions: 4 })
    const appended: string[] = []
    for (let seq = 1; seq <= 40; seq++) appended.push(`${partitionOf(`d-${seq % 8}`, 4)}/${await handoff.append(message(`d-${seq % 8}`, seq))}`)
    const frozen = childCollector({ prefix: keys.prefix, member: 'frozen', partitions: 4, mode: 'slow', storeMs: 1_500, ...timing })
    await waitFor(() => frozen.state.held.length === 4, 15_000, 'the frozen one holds all 4')
    await waitFor(() => frozen.state.inHand.length > 0, 5_000, 'a batch in the frozen one\'s store')
    frozen.child.kill('SIGSTOP')
    const stopped = performance.now()
    const inHand = frozen.state.inHand[0]!
    expect(inHand).toHaveLength(40)
    const store = new Store()
    const other = collector(keys, 'other', store, { partitions: 4, ...timing })
    await other.start()
    await waitFor(() => other.leases.held().size === 4, 10_000, 'the other holds all 4')
    const takeoverMs = Math.round(performance.now() - stopped)
    await waitFor(() => store.writes.size === 40, 10_000, 'the other stored every entry')
    frozen.child.kill('SIGCONT')
    await waitFor(() => frozen.state.refused.length >= inHand.length, 10_000, 'the frozen one\'s write refused')
    // Long enough for the thawed one to retry, rejoin and be handed its share.
    await waitFor(() => other.leases.held().size === 2, 10_000, 'the group back to two members')
    await sleep(1_000)
    await annotate(`SIGSTOP → the other held all 4 partitions after ${takeoverMs} ms; ${inHand.length} entries were in the frozen one's hands`)
    expect(frozen.state.refused.sort()).toEqual([...inHand].sort())
    expect(frozen.state.stored.filter((key) => inHand.includes(key))).toEqual([])
    // Every entry in the store once: the frozen one's batch by the other, redelivered.
    store.write('frozen', frozen.state.stored)
    expect(store.twice).toEqual([])
    expect([...store.writes.keys()].sort()).toEqual([...appended].sort())
    const redelivered = new Set(other.handled.filter((e) => e.redelivered).map(keyOf))
    expect(inHand.filter((key) => !redelivered.has(key))).toEqual([])
    expect(await pendingTotal(redis, keys, 4)).toBe(0)
    frozen.child.kill('SIGKILL')
    await other.stop()
  }, 60_000)

  it('refuses the acknowledgement of a batch whose lease changed hands while it was handled; the batch is claimed and handled again under the new token', async () => {
    const keys = freshKeys()
    const redis = connect()
    const leases = new PartitionLeases({ redis: connect(), keys, partitions: 1, member: 'solo', logger, ttlMs: 2_000, renewMs: 200, settleMs: 100 })
    let release: () => void = () => {}
    const gate = new Promise<void>((resolve) => { release = resolve })
    const batches: StreamEntry[][] = []
    // A writer that does not check its token: only the fenced XACK stands between it and the new holder.
    const reader = new StreamReader({ redis: connect('solo-reader', true), keys, partitions: 1, consumer: 'solo', logger, leases,
      handle: async (entries) => { batches.push(entries); if (batches.length === 1) await gate } })
    const handoff = new StreamHandoff({ redis, keys, partitions: 1 })
    for (let seq = 1; seq <= 5; seq++) await handoff.append(message('d', seq))
    await leases.start()
    await reader.start()
    const first = leases.token(0)!
    await waitFor(() => batches.length === 1, 5_000, 'a batch in hand')
    expect(batches[0]).toHaveLength(5)
    // The lease changes hands under the batch (here: it vanishes and is taken again, with a new token).
    await redis.del(keys.lease(0))
    await waitFor(() => leases.token(0) !== undefined && leases.token(0) !== first, 5_000, 'a new token')
    expect(leases.token(0)).toBeGreaterThan(first)
    expect(await pendingTotal(redis, keys, 1)).toBe(batches[0]!.length)
    release()
    await waitFor(() => reader.counters.acked === batches[0]!.length, 5_000, 'acknowledged under the new token')
    expect(reader.counters.fenced).toBe(batches[0]!.length)
    expect(batches[1]!.map((e) => e.id)).toEqual(batches[0]!.map((e) => e.id))
    expect(batches[1]!.every((e) => e.redelivered && e.token === leases.token(0))).toBe(true)
    expect(await pendingTotal(redis, keys, 1)).toBe(0)
    await reader.stop()
    await leases.stop()
  })

  it('claims entries a stale holder\'s late read left pending on a partition it holds', async () => {
    const keys = freshKeys()
    const redis = connect()
    const store = new Store()
    const holder = collector(keys, 'holder', store, { partitions: 1, sweepMs: 300 })
    await holder.start()
    await sleep(200)
    // XADD and a ghost consumer's XREADGROUP in one transaction: the blocked holder is served only after, and finds nothing.
    const [[, id]] = await redis.multi()
      .xadd(keys.stream(0), '*', 't', 'places/a/flood/d/telemetry', 'p', '{}', 'n', 'n1', 'r', '0')
      .xreadgroup('GROUP', COLLECTOR_GROUP, 'ghost', 'STREAMS', keys.stream(0), '>')
      .exec() as [[null, string], unknown]
    expect((await redis.xpending(keys.stream(0), COLLECTOR_GROUP) as [number, string, string, Array<[string, string]>])[3]).toEqual([['ghost', '1']])
    await waitFor(() => store.writes.has(`0/${id}`), 5_000, 'the ghost\'s entry swept up')
    expect(holder.handled.find((e) => e.id === id)?.redelivered).toBe(true)
    await waitFor(() => holder.reader.counters.acked === 1, 5_000, 'acknowledged')
    expect(await pendingTotal(redis, keys, 1)).toBe(0)
    await holder.stop()
  })
})

describe('the hooks around a partition changing hands', () => {
  it('reads a partition only once onTaken resolved (a failed one is taken again next round), and saves before it releases', async () => {
    const keys = freshKeys()
    const calls: string[] = []
    let failOnce = true
    const leases = new PartitionLeases({
      redis: connect('hooks'), keys, partitions: 2, member: 'collector-h', logger, settleMs: 200,
      onTaken: async (taken) => {
        calls.push(`taken ${[...taken].map(([p, t]) => `${p}@${t}`).join(',')}`)
        await sleep(100)
        if (failOnce) { failOnce = false; throw new Error('state store away') }
        expect(leases.held().size).toBe(0) // not readable while its state is restored
      },
      onReleasing: async (held) => {
        // The leases are still this collector's while the hook runs: a fenced write can go through.
        expect(await leases.checkAll(held)).toEqual(new Set(held.keys()))
        calls.push(`releasing ${[...held.keys()].join(',')}`)
      },
      onGone: (gone) => calls.push(`gone ${gone.join(',')}`),
    })
    await leases.start()
    expect(leases.held().size).toBe(0)
    await waitFor(() => leases.held().size === 2, 5_000, 'both partitions taken the second time')
    expect([...leases.held()]).toEqual([[0, 2], [1, 2]])
    await leases.stop()
    expect(calls).toEqual(['taken 0@1,1@1', 'taken 0@2,1@2', 'releasing 0,1', 'gone 0,1'])
    expect(await connect().exists(keys.lease(0), keys.lease(1))).toBe(0)
  })
})
