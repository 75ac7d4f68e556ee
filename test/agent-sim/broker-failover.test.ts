/**
 * The simulator given several broker URLs directly (no load balancer):
 * device i starts on url[i % n]; when its broker goes away it retries with
 * its back-off and moves along the list until one takes it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runSimulation, type SimSnapshot } from '../../agent-sim/index.ts'
import { PlaceGuardError } from '../../shared/errors.ts'
import { startBroker, waitFor } from '../helpers/broker.ts'
import { createTestFleet, type TestFleet } from '../helpers/fleet.ts'
import { freePort } from '../helpers/free-port.ts'

let fleet: TestFleet
beforeAll(async () => { fleet = await createTestFleet() })
afterAll(() => fleet?.cleanup())

describe('placeguard sim with several broker URLs', () => {
  it('spreads the fleet over the brokers, and moves the devices of a closed broker to the other', async () => {
    const a = await startBroker(fleet)
    const b = await startBroker(fleet)
    let aClosed = false
    let snapshot: SimSnapshot | undefined
    // Runs until the simulator has seen every device back: on a loaded
    // machine the moves can take longer than any fixed run would allow.
    const stop = new AbortController()
    const run = runSimulation({
      dataDir: fleet.dataDir, brokerUrls: [a.url, b.url], devices: 40, intervalMs: 300, durationMs: 0, signal: stop.signal, seed: 11,
      onProgress: (s) => { snapshot = s },
    })
    try {
      // Connected as the devices see it (their CONNACK read), not only as the brokers count: a device still
      // waiting for its CONNACK when a closes had no connection there to lose, and is no drop.
      await waitFor(() => a.broker.connectionCount + b.broker.connectionCount === 40 && snapshot?.connected === 40, 30_000, 'the fleet to connect')
      expect([a.broker.connectionCount, b.broker.connectionCount]).toEqual([20, 20])

      await a.close()
      aClosed = true
      await waitFor(() => b.broker.connectionCount === 40, 30_000, 'every device on the remaining broker')
      expect(a.broker.connectionCount).toBe(0)
      await waitFor(() => snapshot?.connected === 40 && snapshot.reconnects === 20, 30_000, () => `the simulator to see it, last seen ${JSON.stringify(snapshot)}`)
      stop.abort()

      const summary = await run
      expect(summary).toMatchObject({ devices: 40, connected: 40, drops: 20, reconnects: 20, dropsNotReconnected: 0, reconnectsByUrl: { [b.url]: 20 } })
      // What was in flight or queued while a device moved is sent again on the
      // other broker: nothing the fleet published goes unacknowledged.
      expect(summary).toMatchObject({ failed: 0, acked: summary.sent })
      expect(summary.timeToReconnectP50Ms).toBeGreaterThan(0)
      expect(summary.timeToReconnectP99Ms).toBeLessThanOrEqual(summary.timeToReconnectMaxMs!)
      // Back-off from 1 s, doubling: the first retry (same broker) is refused,
      // the second (next broker) is taken. A generous bound, not a benchmark.
      expect(summary.timeToReconnectMaxMs).toBeLessThan(15_000)
      expect(summary.acked).toBeGreaterThan(0)
    } finally {
      stop.abort()
      await run.catch(() => undefined)
      if (!aClosed) await a.close()
      await b.close()
    }
  }, 120_000)

  it('connects the whole fleet when the first of its URLs is down', async () => {
    const up = await startBroker(fleet)
    try {
      const down = `mqtts://127.0.0.1:${await freePort()}`
      const summary = await runSimulation({ dataDir: fleet.dataDir, brokerUrls: [down, up.url], devices: 10, intervalMs: 300, durationMs: 1_000, seed: 12 })
      expect(summary).toMatchObject({ devices: 10, connected: 10, drops: 0, reconnects: 0 })
      expect(summary.connectErrors).toBeGreaterThanOrEqual(5) // each device started on `down` failed there once
    } finally {
      await up.close()
    }
  })

  it('refuses a URL that is not mqtts://, naming the option', async () => {
    const attempt = runSimulation({ dataDir: fleet.dataDir, brokerUrls: ['mqtts://127.0.0.1:8883', 'mqtt://127.0.0.1:1883'], devices: 1, intervalMs: 1_000, durationMs: 0 })
    await expect(attempt).rejects.toThrow(PlaceGuardError)
    await expect(attempt).rejects.toMatchObject({ code: 'PG_ERR_INPUT_INVALID', field: 'brokerUrls', message: 'brokerUrls: "mqtt://127.0.0.1:1883" is not an mqtts:// URL' })
    await expect(runSimulation({ dataDir: fleet.dataDir, brokerUrls: [], devices: 1, intervalMs: 1_000, durationMs: 0 }))
      .rejects.toMatchObject({ code: 'PG_ERR_INPUT_INVALID', field: 'brokerUrls' })
    await expect(runSimulation({ dataDir: fleet.dataDir, brokerUrls: ['mqtts://127.0.0.1:8883', 'mqtts://127.0.0.1:8883/'], devices: 1, intervalMs: 1_000, durationMs: 0 }))
      .rejects.toMatchObject({ message: 'brokerUrls: "mqtts://127.0.0.1:8883/" is listed twice' })
  })
})
