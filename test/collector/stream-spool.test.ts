/**
 * Cluster mode's ingest end to end on real parts: entries appended by a
 * broker node's handoff, read from a real redis-server, decoded, written
 * by the store writer into the embedded store, and acknowledged only then.
 * A collector that dies mid-way (its batch read, never acknowledged) leaves
 * the next one to store it: each (device, seq) once in the store.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { clusterKeys, clusterStatus, connectRedis, type Redis, StreamHandoff, StreamReader } from '../../cluster/index.ts'
import { EmbeddedStore } from '../../collector/embedded-store.ts'
import { StoreWriter } from '../../collector/store-writer.ts'
import { StreamSpool } from '../../collector/stream-spool.ts'
import type { PointSink, StoredPoint } from '../../collector/stored-point.ts'
import { createLogger } from '../../shared/logger.ts'
import { SECURITY_EVENTS_PREFIX } from '../../shared/topics.ts'
import { waitFor } from '../helpers/broker.ts'
import { startRedis, type RunningRedis } from '../helpers/redis-server.ts'

const logger = createLogger({ level: 'silent' })
let server: RunningRedis
let dir: string
const connections: Redis[] = []
const connect = (blocking = false): Redis => {
  const redis = connectRedis({ url: server.url, name: 'test', logger, blocking })
  connections.push(redis)
  return redis
}

beforeAll(async () => {
  server = await startRedis()
  dir = mkdtempSync(join(tmpdir(), 'pg-stream-spool-'))
})
afterAll(async () => {
  for (const redis of connections) redis.disconnect()
  await server?.stop()
  rmSync(dir, { recursive: true, force: true })
})

function telemetry (device: string, seq: number, extra: Record<string, unknown> = {}) {
  return {
    partitionKey: device, topic: `places/riverside/flood/${device}/telemetry`, node: 'node-a', receivedAtMs: Date.now(),
    payload: Buffer.from(JSON.stringify({ ts: 1_700_000_000_000 + seq * 1_000, seq, fw: '3.2.1', level_cm: 40 + seq % 7, battery_v: 3.6, ...extra })),
  }
}

/** A collector: reader → stream spool → store writer → store. */
function collectorOn (keys: ReturnType<typeof clusterKeys>, sink: PointSink, setAside: StoredPoint[] = []) {
  const spool = new StreamSpool({ logger, setAside: async (rejected) => { setAside.push(...rejected.map((r) => r.point)) }, onPoints: () => writer.kick() })
  const writer = new StoreWriter({ spool, sink, baseDelayMs: 10, idlePollMs: 50 })
  const reader = new StreamReader({ redis: connect(true), keys, partitions: 4, consumer: 'collector', logger, blockMs: 100, handle: (entries) => spool.take(entries.map((e) => ({ key: `${e.partition}/${e.id}`, topic: e.topic, payload: e.payload }))) })
  const heard: string[] = []
  spool.on('telemetry', (point) => heard.push(`${point.tags.device}:${point.fields.seq}`))
  spool.on('security-event', (event) => heard.push(event.type))
  return {
    spool, writer, reader, heard,
    start: async () => { writer.start(); await reader.start() },
    // The batch in hand is given up first (it stays pending in Redis), so the reader's loop can end.
    stop: async () => { const stopping = reader.stop(); spool.abandon('stopped'); await stopping; await writer.stop() },
  }
}

describe('stream spool', () => {
  it('stores telemetry and events, turns invalid payloads into payload-invalid events, and acknowledges only what the store holds', async () => {
    const keys = clusterKeys('ss1')
    const store = new EmbeddedStore({ path: join(dir, 'one.db') })
    const handoff = new StreamHandoff({ redis: connect(), keys, partitions: 4 })
    for (let seq = 1; seq <= 20; seq++) await handoff.append(telemetry(`flood-${seq % 3}`, seq))
    await handoff.append({ ...telemetry('flood-9', 1), payload: Buffer.from('{"not":"telemetry"}') })
    await handoff.append({ partitionKey: 'node-a', topic: `${SECURITY_EVENTS_PREFIX}acl-denied`, node: 'node-a', receivedAtMs: 0, payload: Buffer.from(JSON.stringify({ type: 'acl-denied', at: new Date().toISOString(), reason: 'test', deviceId: 'flood-1' })) })
    const collector = collectorOn(keys, store)
    await collector.start()
    await waitFor(() => collector.reader.counters.acked === 22, 10_000, '22 entries acknowledged')
    await collector.stop()
    expect(store.count('flood')).toBe(20)
    expect(store.count('security_event')).toBe(2)
    expect(collector.heard.filter((h) => h === 'payload-invalid' || h === 'acl-denied').sort()).toEqual(['acl-denied', 'payload-invalid'])
    expect((await clusterStatus(connect(), keys, 4)).partitions.reduce((sum, p) => sum + p.pending, 0)).toBe(0)
    await store.close()
  })

  it('leaves a dead collector\'s batch pending; the next stores each (device, seq) once, and events too', async () => {
    const keys = clusterKeys('ss2')
    const store = new EmbeddedStore({ path: join(dir, 'two.db') })
    const handoff = new StreamHandoff({ redis: connect(), keys, partitions: 4 })
    for (let seq = 1; seq <= 30; seq++) await handoff.append(telemetry(`flood-${seq % 5}`, seq))
    await handoff.append({ partitionKey: 'flood-1', topic: `${SECURITY_EVENTS_PREFIX}rate-limited`, node: 'node-a', receivedAtMs: 0, payload: Buffer.from(JSON.stringify({ type: 'rate-limited', at: '2026-12-01T00:00:00.000Z', reason: 'x', deviceId: 'flood-1' })) })
    // The first collector writes every point but dies before acknowledging: its sink stores, then the process is gone.
    let wrote = 0
    const dying = collectorOn(keys, { write: async (points) => { wrote += points.length; await store.write(points); return { outcome: 'retryable', error: 'killed before the acknowledgement' } }, close: async () => {} })
    await dying.start()
    await waitFor(() => wrote >= 31, 10_000, 'the first collector\'s write')
    await dying.stop()
    expect((await clusterStatus(connect(), keys, 4)).partitions.reduce((sum, p) => sum + p.pending, 0)).toBe(31)
    const next = collectorOn(keys, store)
    await next.start()
    await waitFor(() => next.reader.counters.acked === 31, 10_000, 'the pending entries stored and acknowledged')
    await next.stop()
    const stored = store.recent({ measurement: 'flood', limit: 1_000 } as never).map((p) => `${p.tags.device}:${p.fields.seq}`)
    expect(new Set(stored).size).toBe(30)
    expect(store.count('flood')).toBe(30)
    expect(store.count('security_event')).toBe(1)
    await store.close()
  })

  it('sets aside a point the store refuses for good before acknowledging, and stores the rest', async () => {
    const keys = clusterKeys('ss3')
    const store = new EmbeddedStore({ path: join(dir, 'three.db') })
    const handoff = new StreamHandoff({ redis: connect(), keys, partitions: 4 })
    for (let seq = 1; seq <= 8; seq++) await handoff.append(telemetry('flood-1', seq))
    const refusing: PointSink = {
      write: async (points) => points.some((p) => p.fields.seq === 5) ? { outcome: 'failure', status: 400, error: 'field type conflict' } : store.write(points),
      close: async () => {},
    }
    const setAside: StoredPoint[] = []
    const collector = collectorOn(keys, refusing, setAside)
    await collector.start()
    await waitFor(() => collector.reader.counters.acked === 8, 10_000, 'eight acknowledged')
    await collector.stop()
    expect(setAside.map((p) => p.fields.seq)).toEqual([5])
    expect(store.count('flood')).toBe(7)
    await store.close()
  })
})
