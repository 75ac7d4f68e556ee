/**
 * A SUBSCRIBE carrying thousands of foreign filters used to answer each with
 * its own `acl-denied` event (a warning log line and a $SYS publish): one
 * packet cost the broker seconds. Refusals are now reported once per 10 s per
 * session with a count, and a session past 100 refusals is closed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { connectClient, type RunningBroker, startBroker } from '../helpers/broker.ts'
import { createTestFleet, type TestFleet } from '../helpers/fleet.ts'

let fleet: TestFleet
let running: RunningBroker

beforeAll(async () => {
  fleet = await createTestFleet([
    { deviceId: 'probe-001', kind: 'flood', site: 'riverside' },
    { deviceId: 'probe-002', kind: 'flood', site: 'riverside' },
  ])
  running = await startBroker(fleet)
})

afterAll(async () => {
  await running?.close()
  fleet?.cleanup()
})

const denials = (deviceId: string) => running.events.filter((e) => e.type === 'acl-denied' && e.deviceId === deviceId)

describe('refused subscriptions', () => {
  it('a few refusals: the first is reported at once, the rest are counted in the next report', async () => {
    const device = await connectClient(running.url, fleet, fleet.device('probe-001'), 'probe-001')
    for (const topic of ['places/#', 'places/riverside/+/+/telemetry', '$SYS/#']) {
      await expect(device.subscribeAsync(topic, { qos: 1 })).rejects.toThrow(/Subscribe error/)
    }
    expect(device.connected).toBe(true)
    expect(denials('probe-001')).toHaveLength(1)
    expect(denials('probe-001')[0]).toMatchObject({ topic: 'places/#', details: { sinceLastReport: 1 } })
    device.end(true)
  })

  it('one SUBSCRIBE with thousands of foreign filters closes the session and raises two events, not thousands', async () => {
    const device = await connectClient(running.url, fleet, fleet.device('probe-002'), 'probe-002')
    const closed = new Promise<void>((resolve) => device.once('close', () => resolve()))
    device.subscribe(Array.from({ length: 3_000 }, (_, i) => `places/other/flood/x${i}/#`), { qos: 1 }, () => {})
    await closed
    await new Promise((resolve) => setTimeout(resolve, 200))
    const events = denials('probe-002')
    expect(events).toHaveLength(2)
    expect(events[1]!.reason).toMatch(/more than 100 refused subscriptions in one session; connection closed/)
    expect(events[1]!.details).toMatchObject({ disconnected: true, sinceLastReport: 100 })
  })
})
