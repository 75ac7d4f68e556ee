/**
 * [MQTT-2.3.1-2]: a new PUBLISH to a client takes a packet id no other
 * unacknowledged message of its session holds.
 *
 * A persistent subscriber (the collector) that reconnects is resent its
 * unacknowledged messages under their original ids [MQTT-4.4.0-1], while
 * aedes numbers new messages from a random start. Unpatched, a live message
 * could take the id of a queued one not yet resent; its PUBACK then cleared
 * the queued one, which was never delivered. The test puts the new
 * connection's first id on the last queued message's id, the one case
 * chance makes rare and a busy collector group meets sooner or later.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import mqtt, { type MqttClient } from 'mqtt'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { createSqlitePersistence, PlaceGuardBroker, type SqlitePersistence } from '../../broker/index.ts'
import { createLogger } from '../../shared/logger.ts'
import { collectorFiles, connectClient, waitFor } from '../helpers/broker.ts'
import { createTestFleet, type TestFleet } from '../helpers/fleet.ts'

const QUEUED = 2_000
const TOPIC = 'places/riverside/flood/ids-001/telemetry'

let fleet: TestFleet
let persistence: SqlitePersistence
let broker: PlaceGuardBroker
let url: string

beforeAll(async () => {
  fleet = await createTestFleet([{ deviceId: 'ids-001', kind: 'flood', site: 'riverside' }])
  persistence = createSqlitePersistence({ path: join(fleet.dataDir, 'broker.db') })
  broker = new PlaceGuardBroker({
    tls: { caCert: fleet.paths.caCert, serverCert: fleet.paths.serverCert, serverKey: fleet.paths.serverKey, crl: fleet.paths.crl },
    host: '127.0.0.1', port: 0, logger: createLogger({ level: 'silent' }), aedes: { persistence },
    limits: { publishRatePerSec: 0 },
  })
  url = `mqtts://127.0.0.1:${(await broker.listen()).port}`
})
afterAll(async () => {
  await broker.close()
  fleet.cleanup()
})

/** The collector's persistent session; `onPublish` sees every PUBLISH (its payload and packet id) before mqtt.js acknowledges it. */
function collector (onPublish: (payload: string, messageId: number) => void, acknowledge: boolean): Promise<MqttClient> {
  const client = mqtt.connect(url, {
    ca: readFileSync(fleet.paths.caCert), ...Object.fromEntries(Object.entries(collectorFiles(fleet)).map(([k, path]) => [k, readFileSync(path)])),
    clientId: 'collector', clean: false, reconnectPeriod: 0, connectTimeout: 5_000,
  })
  client.handleMessage = (packet, done) => {
    onPublish(String(packet.payload), packet.messageId!)
    done()
  }
  if (!acknowledge) {
    // Received and never acknowledged: each PUBACK mqtt.js sends is dropped, as by a collector killed before its batch was durable.
    const internals = client as unknown as { _sendPacket: (packet: { cmd: string }, callback?: () => void, ...rest: unknown[]) => void }
    const send = internals._sendPacket.bind(client)
    internals._sendPacket = (packet, callback, ...rest) => packet.cmd === 'puback' ? callback?.() : send(packet, callback, ...rest)
  }
  return new Promise((resolve, reject) => {
    client.once('connect', () => resolve(client))
    client.once('error', reject)
  })
}

describe('packet ids to a persistent subscriber that reconnects', () => {
  it('a live message never takes the id of a queued one not yet resent, so no PUBACK clears a message never delivered', async () => {
    const device = await connectClient(url, fleet, fleet.device('ids-001'), 'ids-001')
    // First connection: every message received under its packet id, none acknowledged.
    const firstIds: number[] = []
    const first = await collector((_payload, messageId) => firstIds.push(messageId), false)
    await first.subscribeAsync('places/#', { qos: 1 })
    await Promise.all(Array.from({ length: QUEUED }, (_, seq) => device.publishAsync(TOPIC, `{"seq":${seq}}`, { qos: 1 })))
    await waitFor(() => firstIds.length === QUEUED, 10_000, 'every message delivered once, unacknowledged')
    first.end(true)
    await waitFor(() => persistence.queuedFor('collector') === QUEUED, 5_000, 'the unacknowledged messages queued')

    // Second connection: aedes numbers new messages from Math.random(); start it on the last queued message's id.
    const lastQueuedId = firstIds.at(-1)!
    const received = new Map<string, number>()
    const random = vi.spyOn(Math, 'random').mockReturnValue((lastQueuedId - 0.5) / 65_535)
    let second: MqttClient
    try {
      second = await collector((payload, messageId) => received.set(payload, messageId), true)
    } finally {
      random.mockRestore()
    }
    // Live, while the queue is still being resent: it gets the connection's first new id.
    await device.publishAsync(TOPIC, '{"seq":"live"}', { qos: 1 })
    await waitFor(() => received.size === QUEUED + 1, 15_000, `all ${QUEUED + 1} messages (have ${received.size})`)
      .catch((error: Error) => {
        const missing = Array.from({ length: QUEUED }, (_, seq) => `{"seq":${seq}}`).filter((payload) => !received.has(payload))
        throw new Error(`${error.message}; missing ${missing.slice(0, 5).join(', ')}; the live message had id ${received.get('{"seq":"live"}')}, the last queued ${lastQueuedId}`)
      })
    // Every resent message kept its id; the live one took an id none of them held.
    expect(received.get(`{"seq":${QUEUED - 1}}`)).toBe(lastQueuedId)
    expect(firstIds).not.toContain(received.get('{"seq":"live"}'))
    await waitFor(() => persistence.queuedFor('collector') === 0, 5_000, 'every message acknowledged')
    second.end(true)
    await device.endAsync()
  })
})
