import { spawnSync } from 'node:child_process'
import { connect, createServer, type AddressInfo } from 'node:net'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { DatabaseSync } from 'node:sqlite'
import { serialize } from 'node:v8'
import { join } from 'node:path'
import { Aedes } from 'aedes'
import mqttPacket from 'mqtt-packet'
import { afterEach, describe, expect, it } from 'vitest'
import { SqlitePersistence } from '../../broker/sqlite-persistence.ts'
import type { SecurityEvent } from '../../shared/security-events.ts'

describe('SqlitePersistence', () => {
  it('passes aedes-persistence\'s abstract conformance suite', () => {
    // The suite is written for node:test (t.assert, t.plan), so it runs there.
    const run = spawnSync(process.execPath, ['--test', '--test-reporter=tap', join(import.meta.dirname, 'sqlite-persistence.conformance.ts')], { encoding: 'utf8', timeout: 120_000 })
    const count = (name: string): number => Number(new RegExp(`^# ${name} (\\d+)$`, 'm').exec(run.stdout)?.[1] ?? -1)
    expect(count('fail'), run.stdout.split('\n').filter((line) => line.startsWith('not ok')).join('\n') + run.stderr).toBe(0)
    expect(count('pass')).toBeGreaterThanOrEqual(50)
    expect(run.status).toBe(0)
  })

  describe('the bound on an offline client\'s queue', () => {
    let dir: string
    let aedes: Aedes | undefined
    afterEach(async () => {
      if (aedes) await new Promise<void>((resolve) => aedes!.close(() => resolve()))
      aedes = undefined
      rmSync(dir, { recursive: true, force: true })
    })

    const publish = (broker: Aedes, topic: string, seq: number): Promise<void> => new Promise((resolve, reject) => {
      broker.publish({ cmd: 'publish', topic, payload: Buffer.from(JSON.stringify({ seq })), qos: 1, retain: false, dup: false }, (error) => error ? reject(error) : resolve())
    })

    it('keeps a connected collector that is slow to acknowledge connected, and hands it live what the bound kept out of the queue', async () => {
      dir = mkdtempSync(join(tmpdir(), 'placeguard-persistence-'))
      const persistence = new SqlitePersistence({ path: join(dir, 'broker.db'), maxQueuedPerClient: 2 })
      aedes = new Aedes({ persistence })
      await aedes.listen()
      const server = createServer(aedes.handle)
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
      // A collector whose spool is full reads messages but holds their
      // PUBACKs: a raw MQTT client (mqtt-packet), since mqtt.js always acknowledges.
      const socket = connect((server.address() as AddressInfo).port, '127.0.0.1')
      const parser = mqttPacket.parser()
      const received: Array<{ seq: number, messageId: number }> = []
      let connected = false
      parser.on('packet', (packet) => {
        if (packet.cmd === 'connack') connected = true
        if (packet.cmd === 'publish') received.push({ seq: (JSON.parse(String(packet.payload)) as { seq: number }).seq, messageId: packet.messageId! })
      })
      socket.on('data', (chunk) => parser.parse(chunk))
      let closed = false
      socket.on('close', () => { closed = true })
      socket.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: false, clientId: 'collector', keepalive: 0 }))
      socket.write(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'places/#', qos: 1 }] }))
      await expect.poll(() => connected && persistence.subscriptionsByTopic('places/s1/flood/f1/telemetry').then((subs) => subs.length)).toBe(1)

      for (let seq = 0; seq < 5; seq++) await publish(aedes, 'places/s1/flood/f1/telemetry', seq)
      await expect.poll(() => received.length).toBe(5)
      expect(received.map((message) => message.seq)).toEqual([0, 1, 2, 3, 4])
      expect(closed).toBe(false)
      expect(persistence.queuedFor('collector')).toBe(2)
      for (const { messageId } of received) socket.write(mqttPacket.generate({ cmd: 'puback', messageId }))
      await expect.poll(() => persistence.queuedFor('collector')).toBe(0)
      socket.destroy()
      server.close()
    })

    it('bounds the bytes queued for a client as well as the messages', async () => {
      dir = mkdtempSync(join(tmpdir(), 'placeguard-persistence-'))
      const persistence = new SqlitePersistence({ path: join(dir, 'broker.db'), maxQueuedBytesPerClient: 64 * 1024 })
      aedes = new Aedes({ persistence })
      await aedes.listen()
      // A device subscribed to its own topic in a persistent session, leaving its echoes unacknowledged (STRIDE D).
      await persistence.addSubscriptions({ id: 'flood-1' }, [{ topic: 'places/s1/flood/flood-1/#', qos: 1 }])
      for (let n = 0; n < 5; n++) {
        await new Promise<void>((resolve, reject) => aedes!.publish({ cmd: 'publish', topic: 'places/s1/flood/flood-1/telemetry', payload: Buffer.alloc(20_000), qos: 1, retain: false, dup: false }, (error) => error ? reject(error) : resolve()))
      }
      expect(persistence.queuedFor('flood-1')).toBe(3)
      expect(persistence.queuedBytesFor('flood-1')).toBeLessThanOrEqual(64 * 1024)
      await expect.poll(() => persistence.droppedTotal).toBe(2)
    })

    it('drops beyond the bound, counts and reports it, and tells the client how many it missed once there is room', async () => {
      dir = mkdtempSync(join(tmpdir(), 'placeguard-persistence-'))
      const path = join(dir, 'broker.db')
      const now = Date.parse('2026-11-30T12:00:00Z')
      const persistence = new SqlitePersistence({ path, maxQueuedPerClient: 3, clock: { now: () => now } })
      const reported: SecurityEvent[] = []
      persistence.on('queue-overflow', (event) => reported.push(event))
      aedes = new Aedes({ persistence })
      await aedes.listen()
      // Two offline persistent sessions: the collector, and a second one that only reads events.
      await persistence.addSubscriptions({ id: 'collector' }, [{ topic: 'places/+/+/+/telemetry', qos: 1 }, { topic: '$SYS/placeguard/events/#', qos: 1 }])
      await persistence.addSubscriptions({ id: 'collector-audit' }, [{ topic: '$SYS/placeguard/events/#', qos: 1 }])

      for (let seq = 0; seq < 5; seq++) await publish(aedes, 'places/s1/flood/f1/telemetry', seq)
      expect(persistence.queuedFor('collector')).toBe(3)
      // seq 3 and 4, then the overflow event itself (published once a minute at most)
      await expect.poll(() => persistence.droppedTotal).toBe(3)
      expect(reported).toHaveLength(1)
      expect(reported[0]).toMatchObject({ type: 'queue-overflow', deviceId: 'collector', details: { limit: 3, ended: false } })
      const audit = await queue(persistence, 'collector-audit')
      expect(audit.map((packet) => packet.topic)).toEqual(['$SYS/placeguard/events/queue-overflow'])

      // The collector takes one message: room again.
      const [first] = await queue(persistence, 'collector')
      await persistence.outgoingUpdate({ id: 'collector' }, { ...first!, messageId: 1 })
      await persistence.outgoingClearMessageId({ id: 'collector' }, { messageId: 1 })
      await publish(aedes, 'places/s1/flood/f1/telemetry', 5)

      const queued = await queue(persistence, 'collector')
      expect(queued.map((packet) => packet.topic === '$SYS/placeguard/events/queue-overflow' ? 'gap' : JSON.parse(String(packet.payload)).seq))
        .toEqual([1, 2, 5, 'gap'])
      const gap = JSON.parse(String(queued[3]!.payload)) as SecurityEvent
      expect(gap).toMatchObject({ type: 'queue-overflow', deviceId: 'collector', details: { dropped: 3, limit: 3, ended: true } })

      // The queue and its count survive a reopen of the database.
      await new Promise<void>((resolve) => aedes!.close(() => resolve()))
      aedes = undefined
      await persistence.destroy()
      const reopened = new SqlitePersistence({ path, maxQueuedPerClient: 3 })
      expect(reopened.queuedFor('collector')).toBe(4)
      expect((await queue(reopened, 'collector')).length).toBe(4)
      expect(await reopened.subscriptionsByTopic('places/s1/flood/f1/telemetry')).toMatchObject([{ clientId: 'collector', qos: 1 }])
      await reopened.destroy()
    })
  })
})

describe('a client connecting with clean=true', () => {
  it('ends its old session: subscriptions and queued messages go, other clients keep theirs', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'placeguard-persistence-'))
    const persistence = new SqlitePersistence({ path: join(dir, 'broker.db') })
    await persistence.setup({ id: 'broker-1', counter: 0, publish: (_packet, done) => done() })
    const packet = { cmd: 'publish', topic: 'places/s1/flood/f1/telemetry', payload: Buffer.from('{}'), qos: 1, retain: false, dup: false, brokerId: 'broker-1', brokerCounter: 1 }
    for (const id of ['collector', 'collector-b']) {
      await persistence.addSubscriptions({ id }, [{ topic: 'places/#', qos: 1 }])
      await persistence.outgoingEnqueue({ clientId: id }, packet)
    }
    // What aedes calls for CONNECT with clean=true [MQTT-3.1.2-6]
    await persistence.cleanSubscriptions({ id: 'collector' })
    expect(await queue(persistence, 'collector')).toEqual([])
    expect(persistence.queuedFor('collector')).toBe(0)
    expect(await persistence.subscriptionsByClient({ id: 'collector' })).toEqual([])
    expect(await queue(persistence, 'collector-b')).toHaveLength(1)
    await persistence.destroy()
    rmSync(dir, { recursive: true, force: true })
  })
})

describe('a broker restarted under a fixed id', () => {
  it('numbers its new messages after the queued ones, so aedes does not discard them as duplicates', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'placeguard-persistence-'))
    const path = join(dir, 'broker.db')
    const before = new SqlitePersistence({ path })
    await before.setup({ id: 'node-a', counter: 0, publish: (_packet, done) => done() })
    await before.outgoingEnqueue({ clientId: 'collector' }, { cmd: 'publish', topic: 't', payload: Buffer.from('x'), qos: 1, brokerId: 'node-a', brokerCounter: 40 })
    await before.destroy()
    const aedes = new Aedes({ id: 'node-a', persistence: new SqlitePersistence({ path }) })
    await aedes.listen()
    expect((aedes as unknown as { counter: number }).counter).toBeGreaterThanOrEqual(40) // untyped upstream
    await new Promise<void>((resolve) => aedes.close(() => resolve()))
    rmSync(dir, { recursive: true, force: true })
  })
})

async function queue (persistence: SqlitePersistence, clientId: string): Promise<Array<Record<string, unknown>>> {
  return await persistence.outgoingStream({ id: clientId }).toArray() as Array<Record<string, unknown>>
}

describe('packet ids across a broker restart', () => {
  it('a new message given the packet id an earlier run\'s queued message still holds does not make that message\'s PUBACK clear it', async () => {
    // aedes keeps a resent message's packet id, and numbers new messages from
    // a random start: after a restart a live message may get the id of a
    // queued one not yet resent. Its PUBACK must clear the live one only.
    const dir = mkdtempSync(join(tmpdir(), 'placeguard-persistence-'))
    const path = join(dir, 'broker.db')
    const before = new SqlitePersistence({ path })
    await before.setup({ id: 'broker-old', counter: 0, publish: (_packet, done) => done() })
    const old = { cmd: 'publish', topic: 'places/s1/flood/f1/telemetry', payload: Buffer.from('old'), qos: 1, retain: false, dup: false, brokerId: 'broker-old', brokerCounter: 1 }
    await before.outgoingEnqueue({ clientId: 'collector' }, old)
    await before.outgoingUpdate({ id: 'collector' }, { ...old, messageId: 7 }) // sent, never acknowledged: the broker is killed
    await before.destroy()
    const after = new SqlitePersistence({ path })
    await after.setup({ id: 'broker-new', counter: 0, publish: (_packet, done) => done() })
    const live = { ...old, payload: Buffer.from('new'), brokerId: 'broker-new', brokerCounter: 1 }
    await after.outgoingEnqueue({ clientId: 'collector' }, live)
    await after.outgoingUpdate({ id: 'collector' }, { ...live, messageId: 7 })
    await after.outgoingClearMessageId({ id: 'collector' }, { cmd: 'puback', messageId: 7 })
    // The earlier run's message is still queued, to be resent (with a fresh id); the live one is gone.
    expect((await queue(after, 'collector')).map((p) => Buffer.from(p.payload as Uint8Array).toString())).toEqual(['old'])
    await after.destroy()
    rmSync(dir, { recursive: true, force: true })
  })
})

describe('the layout of a queued message', () => {
  it('reads back rows an earlier version wrote as v8-serialized packets, next to new ones, and keeps MQTT 5 fields whole', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'placeguard-persistence-'))
    const path = join(dir, 'broker.db')
    try {
      await new SqlitePersistence({ path }).destroy()
      // A row as the earlier version queued it: the whole packet, v8-serialized.
      const earlier = { cmd: 'publish', brokerId: 'broker-old', brokerCounter: 3, topic: 'places/s1/flood/f1/telemetry', payload: Buffer.from('old'), qos: 1, retain: false, dup: false, messageId: undefined }
      const db = new DatabaseSync(path)
      db.prepare('INSERT INTO outgoing (client_id, broker_id, broker_counter, message_id, packet) VALUES (?, ?, ?, ?, ?)').run('collector', 'broker-old', 3, 9, serialize(earlier))
      db.close()
      const persistence = new SqlitePersistence({ path })
      await persistence.setup({ id: 'broker-new', counter: 0, publish: (_packet, done) => done() })
      expect(persistence.queuedFor('collector')).toBe(1)
      const plain = { cmd: 'publish', topic: 'places/s1/flood/f2/telemetry', payload: Buffer.from('new ✓'), qos: 1, retain: true, dup: false, brokerId: 'broker-new', brokerCounter: 2 ** 40 + 1 }
      const withoutBroker = { cmd: 'publish', topic: 'places/s1/flood/f3/telemetry', payload: Buffer.alloc(0), qos: 2, retain: false, dup: true }
      const v5 = { cmd: 'publish', topic: 'places/s1/flood/f4/telemetry', payload: Buffer.from('v5'), qos: 1, retain: false, dup: false, brokerId: 'broker-new', brokerCounter: 4, properties: { userProperties: { a: 'b' } }, messageExpiry: 1234 }
      for (const packet of [plain, withoutBroker, v5]) await persistence.outgoingEnqueue({ clientId: 'collector' }, packet)
      expect(await queue(persistence, 'collector')).toStrictEqual([
        { ...earlier, messageId: 9 },
        { ...plain, messageId: undefined },
        { ...withoutBroker, brokerId: undefined, brokerCounter: 0, messageId: undefined },
        { ...v5, messageId: undefined },
      ])
      // A plain publish is kept in the compact layout, one with MQTT 5 fields as v8 keeps it.
      const reader = new DatabaseSync(path, { readOnly: true })
      expect(reader.prepare('SELECT hex(substr(packet, 1, 1)) AS format FROM outgoing ORDER BY id').all().map((row) => row.format)).toEqual(['FF', '01', '01', 'FF'])
      reader.close()
      // The earlier row is found, acknowledged and cleared like any other.
      await persistence.outgoingClearMessageId({ id: 'collector' }, { cmd: 'puback', messageId: 9 })
      expect(persistence.queuedFor('collector')).toBe(3)
      await persistence.destroy()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('the rows of a queue found in memory', () => {
  it('clear the row SQL would, however packet ids are given: again on redelivery, twice at once, after the queue empties', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'placeguard-persistence-'))
    const persistence = new SqlitePersistence({ path: join(dir, 'broker.db') })
    try {
      await persistence.setup({ id: 'b', counter: 0, publish: () => {}, listenerCount: () => 0 } as unknown as Parameters<SqlitePersistence['setup']>[0])
      const client = { id: 'collector' }
      const message = (counter: number) => ({ cmd: 'publish', topic: 'places/s1/flood/f1/telemetry', payload: Buffer.from(`m${counter}`), qos: 1, retain: false, dup: false, brokerId: 'b', brokerCounter: counter })
      const payloads = async () => (await queue(persistence, 'collector')).map((p) => `${Buffer.from(p.payload as Uint8Array).toString()}:${String(p.messageId)}`)
      for (const counter of [1, 2, 3]) await persistence.outgoingEnqueue({ clientId: 'collector' }, message(counter))
      // Delivered with id 5, then sent again with id 6: a PUBACK for 5 clears nothing.
      await persistence.outgoingUpdate(client, { ...message(1), messageId: 5 })
      await persistence.outgoingUpdate(client, { ...message(1), messageId: 6 })
      await persistence.outgoingClearMessageId(client, { messageId: 5 })
      expect(await payloads()).toEqual(['m1:6', 'm2:undefined', 'm3:undefined'])
      // One id on two rows (aedes' ids wrap at 65,535): its PUBACKs clear the oldest first.
      await persistence.outgoingUpdate(client, { ...message(2), messageId: 9 })
      await persistence.outgoingUpdate(client, { ...message(3), messageId: 9 })
      await persistence.outgoingClearMessageId(client, { messageId: 9 })
      expect(await payloads()).toEqual(['m1:6', 'm3:9'])
      await persistence.outgoingClearMessageId(client, { messageId: 9 })
      await persistence.outgoingClearMessageId(client, { messageId: 6 })
      expect(persistence.queuedFor('collector')).toBe(0)
      expect(persistence.queuedBytesFor('collector')).toBe(0)
      // Empty, then queued again: the accounting and the lookups start afresh.
      for (const counter of [4, 5]) await persistence.outgoingEnqueue({ clientId: 'collector' }, message(counter))
      await persistence.outgoingUpdate(client, { ...message(5), messageId: 1 })
      await persistence.outgoingUpdate(client, { ...message(4), messageId: 2 })
      await persistence.outgoingClearMessageId(client, { messageId: 1 })
      expect(await payloads()).toEqual(['m4:2'])
      await persistence.outgoingClearMessageId(client, { messageId: 2 })
      expect(persistence.queuedBytesFor('collector')).toBe(0)
    } finally {
      await persistence.destroy()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('a client with nothing queued', () => {
  it('answers its live deliveries and their PUBACKs without the database, and still refuses a PUBREL nothing holds; a PUBACK nobody awaits the packet of clears it unread', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'placeguard-persistence-'))
    const persistence = new SqlitePersistence({ path: join(dir, 'broker.db') })
    try {
      const client = { id: 'dev-1' }
      const live = { cmd: 'publish', topic: 'places/s1/flood/dev-1/telemetry', payload: Buffer.from('{}'), qos: 1, messageId: 7, brokerId: 'b', brokerCounter: 1 }
      await expect(persistence.outgoingUpdate(client, live)).resolves.toBeUndefined()
      await expect(persistence.outgoingClearMessageId(client, { messageId: 7 })).resolves.toBeUndefined()
      // [MQTT-4.3.3] a PUBREL must replace a stored PUBLISH; with none, aedes is told so.
      await expect(persistence.outgoingUpdate(client, { cmd: 'pubrel', messageId: 7 })).rejects.toThrow('no such packet')
      // Once something is queued for it, the database answers again.
      await persistence.outgoingEnqueueCombi([{ clientId: 'dev-1' }], { ...live, messageId: undefined })
      await persistence.outgoingUpdate(client, live)
      expect(persistence.queuedFor('dev-1')).toBe(1)
      expect((await persistence.outgoingClearMessageId(client, { messageId: 7 }))?.topic).toBe(live.topic)
      expect(persistence.queuedFor('dev-1')).toBe(0)
      // With nobody listening to aedes' 'ack', the cleared packet is not read back; the accounting is the same.
      await persistence.setup({ id: 'b', counter: 1, publish: () => {}, listenerCount: () => 0 } as unknown as Parameters<SqlitePersistence['setup']>[0])
      await persistence.outgoingEnqueueCombi([{ clientId: 'dev-1' }], { ...live, messageId: undefined, brokerCounter: 2 })
      await persistence.outgoingUpdate(client, { ...live, messageId: 8, brokerCounter: 2 })
      expect(persistence.queuedBytesFor('dev-1')).toBeGreaterThan(0)
      await expect(persistence.outgoingClearMessageId(client, { messageId: 8 })).resolves.toBeUndefined()
      expect(persistence.queuedFor('dev-1')).toBe(0)
      expect(persistence.queuedBytesFor('dev-1')).toBe(0)
    } finally {
      await persistence.destroy()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('a refused write in a batch', () => {
  it('is that write\'s alone: a bogus PUBREL in the same turn as other clients\' writes fails none of them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'placeguard-persistence-'))
    const path = join(dir, 'broker.db')
    const persistence = new SqlitePersistence({ path })
    try {
      await persistence.outgoingEnqueueCombi([{ clientId: 'dev-2' }], { cmd: 'publish', topic: 'places/s1/flood/dev-2/telemetry', payload: Buffer.from('{}'), qos: 1, brokerId: 'b', brokerCounter: 1 })
      // Something queued for the hostile client too, so its PUBREL is looked up in the database, inside the batch.
      await persistence.outgoingEnqueueCombi([{ clientId: 'hostile' }], { cmd: 'publish', topic: 'places/s1/flood/hostile/cmd', payload: Buffer.from('{}'), qos: 1, brokerId: 'b', brokerCounter: 3 })
      // One turn, one batch: a retained message, a hostile client's PUBREL for a packet it was never sent, a queued message.
      const retained = persistence.storeRetained({ cmd: 'publish', topic: 'places/s1/flood/dev-1/state', payload: Buffer.from('kept'), qos: 1, retain: true })
      const bogus = persistence.outgoingUpdate({ id: 'hostile' }, { cmd: 'pubrel', messageId: 4242 })
      const queued = persistence.outgoingEnqueueCombi([{ clientId: 'dev-2' }], { cmd: 'publish', topic: 'places/s1/flood/dev-2/telemetry', payload: Buffer.from('{}'), qos: 1, brokerId: 'b', brokerCounter: 4 })
      await expect(bogus).rejects.toThrow('no such packet')
      await expect(retained).resolves.toBeUndefined()
      await expect(queued).resolves.toBeUndefined()
      expect(persistence.queuedFor('dev-2')).toBe(2)
      const view = new DatabaseSync(path, { readOnly: true })
      expect((view.prepare('SELECT COUNT(*) AS n FROM retained').get() as { n: number }).n).toBe(1)
      view.close()
    } finally {
      await persistence.destroy()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('deleting a will', () => {
  it('never rejects, even on a closed store: aedes deletes it in CONNECT with no handler, and a rejection there ends the process', async () => {
    const persistence = new SqlitePersistence({ path: ':memory:' })
    await persistence.setup({ id: 'broker-1', counter: 0, publish: (_packet, done) => done() })
    const will = { cmd: 'publish', topic: 'places/s1/flood/f1/status', payload: Buffer.from('gone'), qos: 1, retain: false, dup: false }
    await persistence.putWill({ id: 'f1' }, will)
    expect(await persistence.delWill({ id: 'f1' })).toMatchObject({ topic: 'places/s1/flood/f1/status' })
    await persistence.putWill({ id: 'f1' }, will)
    await persistence.destroy()
    // A client still connecting while the broker closes.
    await expect(persistence.delWill({ id: 'f1' })).resolves.toBeUndefined()
  })
})
