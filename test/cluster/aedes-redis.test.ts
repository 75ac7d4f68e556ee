/**
 * The pinned aedes, aedes-persistence-redis and mqemitter-redis work
 * together (as test/broker/mq-fast-queue.test.ts holds the queue fix to
 * the pinned mqemitter): two PlaceGuard brokers on one real redis-server
 * route a device's messages to a subscriber on the other node, and a
 * collector-role persistent session made on one node finds every message
 * queued while it was away on the other.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import mqtt, { type MqttClient } from 'mqtt'
import { PlaceGuardBroker } from '../../broker/index.ts'
import { RingQueue } from '../../broker/mq-fast-queue.ts'
import { createRedisState, type RedisState } from '../../broker/redis-state.ts'
import { createLogger } from '../../shared/logger.ts'
import { collectorFiles, connectClient, waitFor } from '../helpers/broker.ts'
import { createTestFleet, read, type TestFleet } from '../helpers/fleet.ts'
import { startRedis, type RunningRedis } from '../helpers/redis-server.ts'

const versionOf = (name: string): string => (JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version

let redis: RunningRedis
let fleet: TestFleet
const nodes: Array<{ broker: PlaceGuardBroker, state: RedisState, url: string }> = []
const clients: MqttClient[] = []

async function startNode (nodeId: string): Promise<{ broker: PlaceGuardBroker, state: RedisState, url: string }> {
  const state = createRedisState({ url: redis.url, nodeId })
  const broker = new PlaceGuardBroker({
    tls: { caCert: fleet.paths.caCert, serverCert: fleet.paths.serverCert, serverKey: fleet.paths.serverKey, crl: fleet.paths.crl },
    host: '127.0.0.1', port: 0, logger: createLogger({ level: 'silent' }), aedes: state,
    // More than aedes-persistence-redis' default delivery of 1,000 queued messages, as fast as the test can send them.
    limits: { publishRatePerSec: 0 },
  })
  const { port } = await broker.listen()
  const node = { broker, state, url: `mqtts://127.0.0.1:${port}` }
  nodes.push(node)
  return node
}

beforeAll(async () => {
  redis = await startRedis()
  fleet = await createTestFleet([{ deviceId: 'flood-00001', kind: 'flood', site: 'riverside' }])
}, 60_000)
afterAll(async () => {
  for (const client of clients) client.end(true)
  for (const node of nodes) {
    await node.broker.close()
  }
  fleet?.cleanup()
  await redis?.stop()
})

describe('the pinned Redis pair', () => {
  it('is the set of versions this test was written against', () => {
    expect({ aedes: versionOf('aedes'), persistence: versionOf('aedes-persistence-redis'), emitter: versionOf('mqemitter-redis'), base: versionOf('aedes-persistence') })
      .toEqual({ aedes: '1.2.0', persistence: '12.0.0', emitter: '7.2.1', base: '11.0.0' })
  })

  it('routes between nodes, keeps a persistent session\'s queue across nodes, with the O(1) queue installed', async () => {
    const a = await startNode('node-a')
    const b = await startNode('node-b')
    expect((a.state.mq as unknown as { _messageQueue: unknown })._messageQueue).toBeInstanceOf(RingQueue)
    const device = await connectClient(b.url, fleet, fleet.device('flood-00001'), 'flood-00001')
    clients.push(device)
    const topic = 'places/riverside/flood/flood-00001/telemetry'

    // A subscriber on node A hears a device publishing on node B.
    const live = await connectClient(a.url, fleet, collectorFiles(fleet), 'collector-live')
    clients.push(live)
    const heard: string[] = []
    live.on('message', (_topic, payload) => heard.push(payload.toString()))
    await live.subscribeAsync(topic, { qos: 1 })
    await device.publishAsync(topic, 'live-1', { qos: 1 })
    await waitFor(() => heard.length === 1, 5_000, 'the cross-node message')
    expect(heard).toEqual(['live-1'])

    // A persistent session made on A, away while the device publishes on B, resumed on B: everything queued arrives.
    const first = await connectClient(a.url, fleet, collectorFiles(fleet), 'collector', { clean: false })
    await first.subscribeAsync(topic, { qos: 1 })
    await first.endAsync()
    for (let n = 1; n <= 1_200; n++) await device.publishAsync(topic, `queued-${n}`, { qos: 1 })
    const received: string[] = []
    const resumed = mqtt.connect(b.url, {
      ca: read(fleet.paths.caCert), cert: read(fleet.paths.collectorCert), key: read(fleet.paths.collectorKey),
      clientId: 'collector', clean: false, reconnectPeriod: 0,
    })
    clients.push(resumed)
    resumed.on('message', (_topic, payload) => received.push(payload.toString()))
    await waitFor(() => received.length >= 1_200, 30_000, 'the 1,200 queued messages')
    expect(received).toEqual(Array.from({ length: 1_200 }, (_, n) => `queued-${n + 1}`))
  }, 60_000)
})
