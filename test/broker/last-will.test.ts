import type { MqttClient } from 'mqtt'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { connectClient, type RunningBroker, startBroker, waitFor } from '../helpers/broker.ts'
import { createTestFleet, type TestFleet } from '../helpers/fleet.ts'
import { mosquittoSub, type Subscriber } from '../helpers/mosquitto-clients.ts'

const IDS = ['will-001', 'will-002', 'will-003', 'will-004', 'will-005']
const status = (id: string) => `places/riverside/flood/${id}/status`
const telemetry = (id: string) => `places/riverside/flood/${id}/telemetry`

let fleet: TestFleet
let running: RunningBroker
let watcher: Subscriber
let sentinels = 0

beforeAll(async () => {
  fleet = await createTestFleet(IDS.map((deviceId) => ({ deviceId, kind: 'flood' as const, site: 'riverside' })))
  running = await startBroker(fleet)
  // mosquitto_sub with the collector certificate watches every will topic and the sentinels.
  watcher = mosquittoSub(running.port, { cafile: fleet.paths.caCert, cert: fleet.paths.collectorCert, key: fleet.paths.collectorKey },
    'collector-will-watch', ['places/riverside/flood/+/status', telemetry('will-005')])
  await watcher.ready
})
afterAll(async () => {
  watcher.stop()
  await running.close()
  fleet.cleanup()
})

function withWill (id: string): Promise<MqttClient> {
  return connectClient(running.url, fleet, fleet.device(id), id, { will: { topic: status(id), payload: Buffer.from(`offline ${id}`), qos: 1, retain: false } })
}

/**
 * Once the broker has reported the disconnect, a will would already be on
 * its way; a message published after that and seen by the watcher shows
 * that whatever was coming before it has arrived.
 */
async function settle (id: string): Promise<void> {
  await running.waitForEvent((e) => e.type === 'disconnect' && e.deviceId === id)
  const marker = `sentinel-${++sentinels}`
  const device = await connectClient(running.url, fleet, fleet.device('will-005'), 'will-005')
  await device.publishAsync(telemetry('will-005'), marker, { qos: 1 })
  await device.endAsync()
  await waitFor(() => watcher.lines.includes(`${telemetry('will-005')} ${marker}`), 10_000, marker)
}

describe('last wills', () => {
  it('are published when a device drops off by itself', async () => {
    const device = await withWill('will-001')
    device.stream.destroy()
    await waitFor(() => watcher.lines.includes(`${status('will-001')} offline will-001`), 10_000, 'the will of will-001')
  })

  it('are not published for a session the broker ended for quarantine', async () => {
    await withWill('will-002')
    running.broker.quarantine({ deviceId: 'will-002', durationMs: 3_600_000, reason: 'test', by: 'alice' })
    await settle('will-002')
    expect(watcher.lines.filter((line) => line.startsWith(status('will-002')))).toEqual([])
  })

  it('are not published for a session the broker ended for revocation', async () => {
    await withWill('will-003')
    await fleet.pki.revoke('will-003')
    await running.broker.reloadCrl()
    await settle('will-003')
    expect(watcher.lines.filter((line) => line.startsWith(status('will-003')))).toEqual([])
  })

  it('are not published for a session the broker ended for an ACL violation', async () => {
    const device = await withWill('will-004')
    device.publish(telemetry('will-001'), 'not mine', { qos: 1 })
    await settle('will-004')
    expect(running.events.some((e) => e.type === 'acl-denied' && e.deviceId === 'will-004')).toBe(true)
    expect(watcher.lines.filter((line) => line.startsWith(status('will-004')))).toEqual([])
    device.end(true)
  })
})
