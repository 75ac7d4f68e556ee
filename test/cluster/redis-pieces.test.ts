/**
 * The cluster's Redis pieces against a real redis-server: the telemetry
 * streams (acknowledged only once handled, pending entries read again after
 * a crash, trimmed once acknowledged), heartbeats that expire, the session
 * directory, quarantine commands passed between nodes, and the carriers
 * of the CRL and of suppliers' grants.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  clusterKeys, clusterStatus, connectRedis, ControlChannel, CrlFollower, NodeRegistry, partitionOf, publishCrl, publishSupplierGrants,
  type Redis, SessionDirectory, StreamHandoff, type StreamEntry, StreamReader, SupplierGrantFollower, listNodes,
} from '../../cluster/index.ts'
import { createLogger } from '../../shared/logger.ts'
import { startRedis, type RunningRedis } from '../helpers/redis-server.ts'
import { waitFor } from '../helpers/broker.ts'

const logger = createLogger({ level: 'silent' })
let server: RunningRedis
const connections: Redis[] = []
const connect = (name = 'test', blocking = false): Redis => {
  const redis = connectRedis({ url: server.url, name, logger, blocking })
  connections.push(redis)
  return redis
}
let prefixCount = 0
const freshKeys = () => clusterKeys(`t${++prefixCount}`)

beforeAll(async () => { server = await startRedis() })
afterAll(async () => {
  for (const redis of connections) redis.disconnect()
  await server?.stop()
})

describe('partitionOf', () => {
  it('is stable and spreads device ids over the partitions', () => {
    expect(partitionOf('flood-00001', 16)).toBe(partitionOf('flood-00001', 16))
    const used = new Set(Array.from({ length: 200 }, (_, i) => partitionOf(`housing-${String(i).padStart(5, '0')}`, 16)))
    expect(used.size).toBe(16)
  })
})

describe('telemetry streams', () => {
  const message = (device: string, seq: number) => ({ partitionKey: device, topic: `places/a/flood/${device}/telemetry`, payload: Buffer.from(JSON.stringify({ seq })), node: 'n1', receivedAtMs: 1_000 + seq })

  it('hands each entry to the reader once, in order per device, and acknowledges it only after handle resolved', async () => {
    const keys = freshKeys()
    const handoff = new StreamHandoff({ redis: connect(), keys, partitions: 4 })
    const seen: StreamEntry[] = []
    const reader = new StreamReader({ redis: connect('reader', true), keys, partitions: 4, consumer: 'c1', logger, blockMs: 100, handle: async (entries) => { seen.push(...entries) } })
    await reader.start()
    for (let seq = 1; seq <= 50; seq++) await handoff.append(message(`d-${seq % 5}`, seq))
    await waitFor(() => reader.counters.acked === 50, 10_000, 'fifty entries acknowledged')
    await reader.stop()
    expect(seen).toHaveLength(50)
    for (let d = 0; d < 5; d++) {
      const seqs = seen.filter((e) => e.topic.includes(`/d-${d}/`)).map((e) => (JSON.parse(e.payload.toString()) as { seq: number }).seq)
      expect(seqs).toEqual([...seqs].sort((a, b) => a - b))
    }
    expect(seen[0]!.node).toBe('n1')
    const status = await clusterStatus(connect(), keys, 4)
    expect(status.partitions.reduce((sum, p) => sum + p.pending, 0)).toBe(0)
    expect(status.partitions.reduce((sum, p) => sum + (p.lag ?? 0), 0)).toBe(0)
  })

  it('keeps a batch whose handling failed (or was cut short by a crash) pending, and gives it again, marked redelivered', async () => {
    const keys = freshKeys()
    const handoff = new StreamHandoff({ redis: connect(), keys, partitions: 2 })
    for (let seq = 1; seq <= 10; seq++) await handoff.append(message('d-1', seq))
    // A collector that reads and dies before the store confirmed: its reader never acknowledges.
    let crashed = false
    const dying = new StreamReader({ redis: connect('dying', true), keys, partitions: 2, consumer: 'c1', logger, blockMs: 100, baseRetryMs: 10_000,
      handle: async () => { crashed = true; throw new Error('store down') } })
    await dying.start()
    await waitFor(() => crashed, 5_000, 'first read')
    await dying.stop()
    expect((await clusterStatus(connect(), keys, 2)).partitions.reduce((sum, p) => sum + p.pending, 0)).toBe(10)
    const seen: StreamEntry[] = []
    const next = new StreamReader({ redis: connect('next', true), keys, partitions: 2, consumer: 'c1', logger, blockMs: 100, handle: async (entries) => { seen.push(...entries) } })
    await next.start()
    await waitFor(() => next.counters.acked === 10, 5_000, 'the pending ten acknowledged')
    await next.stop()
    expect(seen.map((e) => e.redelivered)).toEqual(Array(10).fill(true))
    expect((await clusterStatus(connect(), keys, 2)).partitions.reduce((sum, p) => sum + p.pending, 0)).toBe(0)
  })

  it('retries a refused batch without reading past it, then trims what was acknowledged', async () => {
    const keys = freshKeys()
    const redis = connect()
    const handoff = new StreamHandoff({ redis, keys, partitions: 1 })
    for (let seq = 1; seq <= 5; seq++) await handoff.append(message('d-1', seq))
    let refusals = 2
    const batches: number[][] = []
    const reader = new StreamReader({ redis: connect('r', true), keys, partitions: 1, consumer: 'c1', logger, blockMs: 100, baseRetryMs: 20, count: 3,
      handle: async (entries) => {
        batches.push(entries.map((e) => (JSON.parse(e.payload.toString()) as { seq: number }).seq))
        if (refusals-- > 0) throw new Error('store down')
      } })
    await reader.start()
    await waitFor(() => reader.counters.acked === 5, 5_000, 'five acknowledged')
    expect(batches).toEqual([[1, 2, 3], [1, 2, 3], [1, 2, 3], [4, 5]])
    expect(await redis.xlen(keys.stream(0))).toBe(5)
    expect(await reader.trimAcknowledged()).toBe(5)
    expect(await redis.xlen(keys.stream(0))).toBe(0)
    await reader.stop()
  })

  it('trims only below the oldest entry still pending, whoever holds it', async () => {
    const keys = freshKeys()
    const redis = connect()
    const handoff = new StreamHandoff({ redis, keys, partitions: 1 })
    const reader = new StreamReader({ redis: connect('r', true), keys, partitions: 1, consumer: 'c1', logger, handle: async () => {} })
    expect(await reader.trimAcknowledged()).toBe(0)
    await redis.xgroup('CREATE', keys.stream(0), 'collectors', '0', 'MKSTREAM')
    const ids: string[] = []
    for (let seq = 1; seq <= 5; seq++) ids.push(await handoff.append(message('d-1', seq)))
    await redis.xreadgroup('GROUP', 'collectors', 'other', 'COUNT', 3, 'STREAMS', keys.stream(0), '>')
    await redis.xack(keys.stream(0), 'collectors', ids[0]!, ids[2]!)
    // ids[1] is pending with another consumer: it and everything after stay.
    expect(await reader.trimAcknowledged()).toBe(1)
    expect((await redis.xrange(keys.stream(0), '-', '+')).map(([id]) => id)).toEqual(ids.slice(1))
    await redis.xack(keys.stream(0), 'collectors', ids[1]!)
    // None pending: up to the last delivered (ids[2]); ids[3] and ids[4] were never read.
    expect(await reader.trimAcknowledged()).toBe(2)
    expect((await redis.xrange(keys.stream(0), '-', '+')).map(([id]) => id)).toEqual(ids.slice(3))
  })

  it('rejects the PUBACK path when Redis cannot take the entry', async () => {
    const keys = freshKeys()
    const redis = connect()
    await redis.set(keys.stream(partitionOf('d-1', 1)), 'not a stream')
    await expect(new StreamHandoff({ redis, keys, partitions: 1 }).append(message('d-1', 1))).rejects.toThrow(/WRONGTYPE/)
  })
})

describe('node registry', () => {
  it('lists a node alive while it beats, dead once its record expired, and counts the others\' connections', async () => {
    const keys = freshKeys()
    const a = new NodeRegistry({ redis: connect(), keys, nodeId: 'a', mqtt: 'mqtts://a:8883', connections: () => ({ device: 3, collector: 1 }), logger, heartbeatMs: 100, ttlMs: 400 })
    // b beats once and never again, as a node killed with SIGKILL: nothing deletes its record, it expires.
    const b = new NodeRegistry({ redis: connect(), keys, nodeId: 'b', mqtt: 'mqtts://b:8883', connections: () => ({ device: 5 }), logger, heartbeatMs: 100, ttlMs: 400 })
    await a.start()
    await b.beat()
    await a.beat()
    expect(a.othersConnections()).toBe(5)
    expect(b.othersConnections('collector')).toBe(1)
    expect((await listNodes(connect(), keys)).map((n) => [n.nodeId, n.alive])).toEqual([['a', true], ['b', true]])
    await new Promise((resolve) => setTimeout(resolve, 600))
    await a.beat()
    expect(a.othersConnections()).toBe(0)
    const nodes = await listNodes(connect(), keys)
    expect(nodes.find((n) => n.nodeId === 'a')?.alive).toBe(true)
    expect(nodes.find((n) => n.nodeId === 'b')).toMatchObject({ alive: false, connections: { device: 5 } })
    await a.stop()
    expect((await listNodes(connect(), keys)).find((n) => n.nodeId === 'a')?.alive).toBe(false)
  })
})

describe('session directory', () => {
  it('names the previous holder on a live node, not on a dead one, and never releases another node\'s record', async () => {
    const keys = freshKeys()
    const redis = connect()
    const live = new NodeRegistry({ redis, keys, nodeId: 'a', mqtt: 'x', connections: () => ({}), logger, ttlMs: 5_000 })
    await live.beat()
    const directory = new SessionDirectory(redis, keys)
    const onA = { node: 'a', serial: '01', remoteAddress: '10.0.0.1', connectedAt: 1 }
    const onB = { node: 'b', serial: '01', remoteAddress: '10.0.0.2', connectedAt: 2 }
    expect(await directory.claim('flood-1', onA)).toBeUndefined()
    expect(await directory.claim('flood-1', onB)).toEqual(onA)
    // a's late release of its (taken-over) session leaves b's record.
    await directory.release('flood-1', onA)
    expect(JSON.parse((await redis.get(keys.owner('flood-1')))!)).toEqual(onB)
    // b is not a live node (never beat): a device coming back on c after b died is no clone.
    const onC = { node: 'c', serial: '01', remoteAddress: '10.0.0.3', connectedAt: 3 }
    expect(await directory.claim('flood-1', onC)).toBeUndefined()
    await directory.release('flood-1', onC)
    expect(await redis.get(keys.owner('flood-1'))).toBeNull()
  })
})

describe('control channel', () => {
  it('passes a quarantine to the other nodes, not back to its origin, keeps it for late nodes with the time left, and forgets it on lift', async () => {
    const keys = freshKeys()
    let now = 1_000_000
    const heard: Record<string, string[]> = { a: [], b: [] }
    const channels = Object.fromEntries(['a', 'b'].map((node) => [node, new ControlChannel({
      redis: connect(), subscriber: connect(`sub-${node}`, true), keys, nodeId: node, logger, now: () => now,
      apply: (command) => { heard[node]!.push(`${command.action}:${command.deviceId}${command.action === 'quarantine' ? `:${command.durationMs}` : ''}`) },
    })])) as Record<string, ControlChannel>
    await channels.a!.start()
    await channels.b!.start()
    await channels.a!.publish({ action: 'quarantine', deviceId: 'flood-1', durationMs: 60_000, reason: 'test', by: 'operator' })
    await waitFor(() => heard.b!.length === 1, 5_000, 'b hears the quarantine')
    expect(heard).toEqual({ a: [], b: ['quarantine:flood-1:60000'] })
    now += 20_000
    const late: string[] = []
    await new ControlChannel({ redis: connect(), subscriber: connect('sub-c', true), keys, nodeId: 'c', logger, now: () => now,
      apply: (command) => { late.push(`${command.action}:${command.deviceId}:${command.action === 'quarantine' ? command.durationMs : ''}`) } }).start()
    expect(late).toEqual(['quarantine:flood-1:40000'])
    await channels.b!.publish({ action: 'lift', deviceId: 'flood-1', by: 'operator' })
    await waitFor(() => heard.a!.length === 1, 5_000, 'a hears the lift')
    expect(heard.a).toEqual(['lift:flood-1'])
    expect(await channels.a!.inForce()).toEqual([])
  })
})

describe('CRL channel', () => {
  it('gives a node the stored CRL at start and each new one when announced; a refused one is not retried until announced again', async () => {
    const keys = freshKeys()
    const redis = connect()
    await publishCrl(redis, keys, 'CRL-1')
    const applied: string[] = []
    const attempts: string[] = []
    const follower = new CrlFollower({ redis: connect(), subscriber: connect('crl-sub', true), keys, logger, pollMs: 50,
      apply: async (pem) => { attempts.push(pem); if (pem.includes('forged')) throw new Error('not signed by the fleet CA'); applied.push(pem) } })
    await follower.start()
    expect(applied).toEqual(['CRL-1'])
    expect(await publishCrl(redis, keys, 'CRL-2')).toBe(1)
    await waitFor(() => applied.length === 2, 5_000, 'the second CRL')
    await redis.set(keys.crl, 'forged CRL')
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(attempts.filter((a) => a === 'forged CRL')).toHaveLength(1)
    expect(applied).toEqual(['CRL-1', 'CRL-2'])
    await follower.stop()
  })
  it('reads again after a read in flight when a new CRL is announced during it, without waiting for the poll', async () => {
    const keys = freshKeys()
    const redis = connect()
    await publishCrl(redis, keys, 'CRL-1')
    const applied: string[] = []
    let slow: (() => void) | undefined
    // An hour between polls: only announcements drive the reads here.
    const follower = new CrlFollower({ redis: connect(), subscriber: connect('crl-sub-2', true), keys, logger, pollMs: 3_600_000,
      apply: async (pem) => {
        if (pem === 'CRL-2') await new Promise<void>((resolve) => { slow = resolve })
        applied.push(pem)
      } })
    await follower.start()
    await publishCrl(redis, keys, 'CRL-2')
    await waitFor(() => slow !== undefined, 5_000, 'the read of CRL-2 in flight')
    // CRL-3 is stored and announced while CRL-2 is still being applied: the read in flight predates it.
    await publishCrl(redis, keys, 'CRL-3')
    await new Promise((resolve) => setTimeout(resolve, 100))
    slow!()
    await waitFor(() => applied.includes('CRL-3'), 5_000, 'CRL-3, announced during the read of CRL-2')
    expect(applied).toEqual(['CRL-1', 'CRL-2', 'CRL-3'])
    await follower.stop()
  })
})

describe('suppliers\' grants through Redis', () => {
  it('follows the grants sent at start, on an announcement and, without one, at its next read; a grant that does not check out refuses only its supplier', async () => {
    const keys = freshKeys()
    const redis = connect()
    await publishSupplierGrants(redis, keys, new Map([['acme-pumps', { sites: ['riverside'] }]]))
    const follower = new SupplierGrantFollower({
      redis: connect(), subscriber: connect('grants-sub', true), keys, logger, pollMs: 50,
      parse: (supplierId, grant) => {
        if ((grant as { sites?: unknown }).sites === undefined) throw new Error('no sites')
        return { supplierId, sites: (grant as { sites: string[] }).sites }
      },
    })
    await follower.start()
    expect(follower.grant('acme-pumps')).toEqual({ supplierId: 'acme-pumps', sites: ['riverside'] })
    expect(follower.grant('river-care')).toBeUndefined()
    // Replaced whole: a supplier left out (revoked) is gone from every node.
    expect(await publishSupplierGrants(redis, keys, new Map([['river-care', { sites: ['harbour'] }]]))).toBe(1)
    await waitFor(() => follower.grant('river-care') !== undefined, 5_000, 'the announced grant')
    expect(follower.grant('acme-pumps')).toBeUndefined()
    // Written without an announcement (a missed one): read at the next poll.
    await redis.hset(keys.suppliers, 'acme-pumps', JSON.stringify({ sites: ['riverside', 'harbour'] }), 'broken-co', JSON.stringify({ kinds: [] }))
    await waitFor(() => follower.grant('acme-pumps') !== undefined, 5_000, 'the grant read without an announcement')
    expect(follower.grant('acme-pumps')).toEqual({ supplierId: 'acme-pumps', sites: ['riverside', 'harbour'] })
    expect(follower.grant('broken-co')).toBeUndefined()
    expect(follower.grant('river-care')).toEqual({ supplierId: 'river-care', sites: ['harbour'] })
    await follower.stop()
  })
})
