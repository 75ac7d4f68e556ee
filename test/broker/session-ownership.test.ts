import { join } from 'node:path'
import mqtt, { type MqttClient } from 'mqtt'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { collectorFiles, connectClient, type RunningBroker, startBroker, waitFor } from '../helpers/broker.ts'
import { createTestFleet, read, type TestFleet } from '../helpers/fleet.ts'
import { opensslLeaf } from '../helpers/openssl-leaf.ts'

const TELEMETRY = 'places/riverside/flood/flood-001/telemetry'

let fleet: TestFleet
let running: RunningBroker
let ownersFile: string
let deviceAsCollector: { cert: string, key: string }
let rogueCollector: { cert: string, key: string }

beforeAll(async () => {
  fleet = await createTestFleet([{ deviceId: 'flood-001', kind: 'flood', site: 'riverside' }])
  ownersFile = join(fleet.dataDir, 'session-owners.jsonl')
  running = await startBroker(fleet, {}, { sessionOwnersFile: ownersFile })
  // Certificates that exist already, whatever the PKI refuses to sign today.
  deviceAsCollector = opensslLeaf(fleet, 'device-collector', { commonName: 'collector', sanUri: 'urn:placeguard:device:riverside:flood:collector' })
  rogueCollector = opensslLeaf(fleet, 'rogue-collector', { commonName: 'rogue', sanUri: 'urn:placeguard:collector:rogue' })
})
afterAll(async () => {
  await running.close()
  fleet.cleanup()
})

/** Connects with clean=false and records every message from the first packet on. */
function persistentClient (url: string, files: { cert: string, key: string }, clientId: string, clean = false): { client: MqttClient, received: string[], connected: Promise<void> } {
  const received: string[] = []
  const client = mqtt.connect(url, { ca: read(fleet.paths.caCert), cert: read(files.cert), key: read(files.key), clientId, clean, reconnectPeriod: 0, connectTimeout: 5_000 })
  client.on('message', (_topic, payload) => received.push(payload.toString()))
  const connected = new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve())
    client.once('error', (error) => { client.end(true); reject(error) })
    client.once('close', () => reject(new Error('closed before CONNACK')))
  })
  return { client, received, connected }
}

async function queueForCollector (count: number): Promise<string[]> {
  const device = await connectClient(running.url, fleet, fleet.device('flood-001'), 'flood-001')
  const payloads = Array.from({ length: count }, (_, i) => JSON.stringify({ seq: i, marker: `queued-${i}` }))
  for (const payload of payloads) await device.publishAsync(TELEMETRY, payload, { qos: 1 })
  await device.endAsync()
  return payloads
}

describe('persistent sessions belong to the identity that made them', () => {
  it('a device certificate with the reserved id "collector" cannot take or read the collector\'s session', async () => {
    const collector = persistentClient(running.url, collectorFiles(fleet), 'collector')
    await collector.connected
    await collector.client.subscribeAsync('places/#', { qos: 1 })
    await collector.client.endAsync()
    const queued = await queueForCollector(3)

    const impostor = persistentClient(running.url, deviceAsCollector, 'collector')
    await expect(impostor.connected).rejects.toThrow(/not authori[sz]ed/i)
    expect(impostor.received).toEqual([])
    const refused = await running.waitForEvent((e) => e.type === 'auth-failed' && e.deviceId === 'collector')
    expect(refused).toMatchObject({ code: 'RESERVED_ID' })

    // The real collector's session kept its queued QoS 1 messages.
    const back = persistentClient(running.url, collectorFiles(fleet), 'collector')
    await back.connected
    await waitFor(() => back.received.length >= queued.length, 10_000, 'queued messages')
    expect(back.received).toEqual(queued)
    await back.client.endAsync()
  })

  it('another collector identity can neither resume the session nor take over the live connection, also after a restart', async () => {
    const queued = await queueForCollector(2)
    const rogue = persistentClient(running.url, rogueCollector, 'collector')
    await expect(rogue.connected).rejects.toThrow(/not authori[sz]ed/i)
    expect(rogue.received).toEqual([])
    expect(await running.waitForEvent((e) => e.type === 'auth-failed' && e.code === 'SESSION_OWNER_MISMATCH')).toMatchObject({ deviceId: 'collector:rogue' })

    const real = persistentClient(running.url, collectorFiles(fleet), 'collector')
    await real.connected
    await waitFor(() => real.received.length >= queued.length, 10_000, 'queued messages')
    expect(real.received).toEqual(queued)
    // Not even a clean session kicks the owner's live connection off.
    const takeover = persistentClient(running.url, rogueCollector, 'collector', true)
    await expect(takeover.connected).rejects.toThrow(/not authori[sz]ed/i)
    expect(real.client.connected).toBe(true)
    await real.client.endAsync()

    await running.close()
    running = await startBroker(fleet, {}, { sessionOwnersFile: ownersFile })
    const afterRestart = persistentClient(running.url, rogueCollector, 'collector')
    await expect(afterRestart.connected).rejects.toThrow(/not authori[sz]ed/i)
    const owner = persistentClient(running.url, collectorFiles(fleet), 'collector')
    await owner.connected
    await owner.client.endAsync()
  })
})
