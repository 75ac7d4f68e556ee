import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { collectorFiles, connectClient, type RunningBroker, startBroker, waitFor } from '../helpers/broker.ts'
import { createTestFleet, type TestFleet } from '../helpers/fleet.ts'

let fleet: TestFleet
let running: RunningBroker

beforeAll(async () => {
  fleet = await createTestFleet(['big-1', 'chatty-1', 'calm-1'].map((id) => ({ deviceId: id, kind: 'housing', site: 'block-a' })))
  running = await startBroker(fleet, { maxPacketBytes: 1024, publishRatePerSec: 20, publishBurst: 5, maxCollectorSessions: 1 })
})

afterAll(async () => {
  await running?.close()
  fleet?.cleanup()
})

const topic = (id: string) => `places/block-a/housing/${id}/telemetry`

describe('broker limits', () => {
  it('closes a connection that sends a packet over the size limit, with an event', async () => {
    const device = await connectClient(running.url, fleet, fleet.device('big-1'), 'big-1')
    const closed = new Promise<void>((resolve) => device.once('close', () => resolve()))
    device.publish(topic('big-1'), Buffer.alloc(4096, 1))
    await closed
    const event = await running.waitForEvent((e) => e.type === 'packet-too-large')
    expect(event).toMatchObject({ deviceId: 'big-1' })
    expect(event.details?.bytes).toBeGreaterThan(4096)
  })

  it('slows a device over its publish rate without losing a message', async () => {
    const collector = await connectClient(running.url, fleet, collectorFiles(fleet), 'collector')
    const received: number[] = []
    collector.on('message', (_t, payload) => received.push(Number(payload.toString())))
    await collector.subscribeAsync('places/#', { qos: 1 })
    const device = await connectClient(running.url, fleet, fleet.device('chatty-1'), 'chatty-1')
    const started = Date.now()
    await Promise.all(Array.from({ length: 25 }, (_, i) => device.publishAsync(topic('chatty-1'), String(i), { qos: 1 })))
    const elapsed = Date.now() - started
    await waitFor(() => received.length === 25, 10_000, 'all 25 messages')
    expect(received).toEqual(Array.from({ length: 25 }, (_, i) => i))
    // 5 go at once, the other 20 at 20/s: the bucket, not the network, sets the pace.
    expect(elapsed).toBeGreaterThanOrEqual(900)
    const event = await running.waitForEvent((e) => e.type === 'rate-limited' && e.deviceId === 'chatty-1')
    expect(event.details).toMatchObject({ ratePerSec: 20, burst: 5 })
    // One event per minute per device, not one per message.
    expect(running.events.filter((e) => e.type === 'rate-limited')).toHaveLength(1)
    device.end(true)
    collector.end(true)
  })

  it('refuses a collector session beyond the limit', async () => {
    const first = await connectClient(running.url, fleet, collectorFiles(fleet), 'collector-a')
    await expect(connectClient(running.url, fleet, collectorFiles(fleet), 'collector-b')).rejects.toThrow()
    await running.waitForEvent((e) => e.type === 'auth-failed' && e.code === 'SESSION_LIMIT')
    first.end(true)
  })

  it('drops connections beyond the total limit before the handshake, with an event', async () => {
    const small = await startBroker(fleet, { maxConnections: 1, reservedConnections: 0 })
    try {
      const first = await connectClient(small.url, fleet, fleet.device('calm-1'), 'calm-1')
      await expect(connectClient(small.url, fleet, fleet.device('big-1'), 'big-1')).rejects.toThrow()
      const event = await small.waitForEvent((e) => e.type === 'connection-limit')
      expect(event.reason).toBe('connection refused: 1 connections already open')
      expect(first.connected).toBe(true)
      first.end(true)
    } finally {
      await small.close()
    }
  })

  it('disconnects a device whose backlog would be held longer than maxThrottleMs', async () => {
    const strict = await startBroker(fleet, { publishRatePerSec: 1, publishBurst: 1, maxThrottleMs: 1_500 })
    try {
      const device = await connectClient(strict.url, fleet, fleet.device('calm-1'), 'calm-1')
      const closed = new Promise<void>((resolve) => device.once('close', () => resolve()))
      for (let i = 0; i < 10; i++) device.publish(topic('calm-1'), String(i), { qos: 0 })
      await closed
      const event = await strict.waitForEvent((e) => e.type === 'rate-limited' && e.details?.disconnected === true)
      expect(event).toMatchObject({ deviceId: 'calm-1' })
    } finally {
      await strict.close()
    }
  })
})
