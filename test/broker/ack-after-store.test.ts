/**
 * A QoS 1 PUBACK means the message is kept: its retained copy and the copy
 * queued for an offline persistent session are committed to broker.db
 * before the device sees the PUBACK (broker/ack-after-store.ts). The store
 * is slowed down so that a PUBACK sent before it would arrive first; a
 * second connection to the database file, the view a restarted broker would
 * have, looks at the moment each PUBACK arrives.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import type { MqttClient } from 'mqtt'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PlaceGuardBroker, SqlitePersistence } from '../../broker/index.ts'
import { createLogger } from '../../shared/logger.ts'
import { collectorFiles, connectClient } from '../helpers/broker.ts'
import { createTestFleet, type TestFleet } from '../helpers/fleet.ts'

const TOPIC = 'places/block-a/flood/flood-7/telemetry'
const STORE_DELAY_MS = 300

/** The real persistence, each acknowledged write slowed down as on a busy disk. */
class SlowPersistence extends SqlitePersistence {
  override async storeRetained (packet: Parameters<SqlitePersistence['storeRetained']>[0]): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, STORE_DELAY_MS))
    return super.storeRetained(packet)
  }

  override async outgoingEnqueueCombi (...args: Parameters<SqlitePersistence['outgoingEnqueueCombi']>): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, STORE_DELAY_MS))
    return super.outgoingEnqueueCombi(...args)
  }
}

let fleet: TestFleet
let dir: string
let broker: PlaceGuardBroker
let url: string
let view: DatabaseSync
const clients: MqttClient[] = []

beforeAll(async () => {
  fleet = await createTestFleet([{ deviceId: 'flood-7', kind: 'flood', site: 'block-a' }])
  dir = mkdtempSync(join(tmpdir(), 'placeguard-ack-'))
  const path = join(dir, 'broker.db')
  broker = new PlaceGuardBroker({
    tls: { caCert: fleet.paths.caCert, serverCert: fleet.paths.serverCert, serverKey: fleet.paths.serverKey, crl: fleet.paths.crl },
    host: '127.0.0.1', port: 0, logger: createLogger({ level: 'silent' }),
    aedes: { persistence: new SlowPersistence({ path }) as never },
  })
  const { port } = await broker.listen()
  url = `mqtts://127.0.0.1:${port}`
  view = new DatabaseSync(path, { readOnly: true })
})

afterAll(async () => {
  for (const client of clients) client.end(true)
  view?.close()
  await broker?.close()
  fleet?.cleanup()
  rmSync(dir, { recursive: true, force: true })
})

function publishAndLook (client: MqttClient, payload: object, retain: boolean): Promise<{ retained: number, queued: number }> {
  return new Promise((resolve, reject) => client.publish(TOPIC, JSON.stringify(payload), { qos: 1, retain }, (error) => {
    if (error) return reject(error)
    // What the database file holds when the PUBACK is in the device's hands.
    const retained = (view.prepare('SELECT COUNT(*) AS n FROM retained WHERE topic = ?').get(TOPIC) as { n: number }).n
    const queued = (view.prepare("SELECT COUNT(*) AS n FROM outgoing WHERE client_id = 'collector'").get() as { n: number }).n
    resolve({ retained, queued })
  }))
}

describe('QoS 1 PUBACK', () => {
  it('arrives only after the retained message and the offline session\'s copy are committed', async () => {
    const collector = await connectClient(url, fleet, collectorFiles(fleet), 'collector', { clean: false })
    clients.push(collector)
    await new Promise<void>((resolve, reject) => collector.subscribe('places/+/+/+/telemetry', { qos: 1 }, (error) => error ? reject(error) : resolve()))
    await new Promise<void>((resolve) => collector.end(false, {}, () => resolve()))

    const device = await connectClient(url, fleet, fleet.device('flood-7'), 'flood-7')
    clients.push(device)
    const first = await publishAndLook(device, { ts: 1, seq: 1, fw: '1.0.0', level_cm: 10, battery_v: 3.6 }, false)
    expect(first.queued).toBe(1)
    const second = await publishAndLook(device, { ts: 2, seq: 2, fw: '1.0.0', level_cm: 11, battery_v: 3.6 }, true)
    expect(second).toEqual({ retained: 1, queued: 2 })
  })

})
