/**
 * Simulated devices keep their TLS session: when their broker goes away
 * they come back, after their jittered back-off, to another node holding the
 * same ticket secret (here: the same data directory) by resuming it.
 */
import { describe, expect, it } from 'vitest'
import { runSimulation, type SimSnapshot } from '../../agent-sim/index.ts'
import { startBroker, waitFor } from '../helpers/broker.ts'
import { createTestFleet } from '../helpers/fleet.ts'

describe('placeguard sim: TLS session resumption on reconnect', () => {
  it('devices dropped by a broker reconnect by resuming their TLS sessions', async () => {
    const fleet = await createTestFleet()
    const a = await startBroker(fleet)
    const b = await startBroker(fleet)
    let aClosed = false
    const stop = new AbortController()
    try {
      // Runs until the simulator has seen the dropped devices back: on a loaded machine their back-off and
      // handshakes can outlast any fixed run.
      let snapshot: SimSnapshot | undefined
      const run = runSimulation({
        dataDir: fleet.dataDir, brokerUrls: [a.url, b.url], devices: 20, intervalMs: 500, durationMs: 0, signal: stop.signal, seed: 21,
        onProgress: (s) => { snapshot = s },
      })
      // Connected as MQTT (the broker's connect event, and the device's CONNACK read), not only past TLS: a
      // device still in its CONNECT when a closes never had a session there to lose, and is no drop.
      const connected = (broker: typeof a): number => broker.events.filter((e) => e.type === 'connect').length
      await waitFor(() => connected(a) + connected(b) === 20 && snapshot?.connected === 20, 30_000, 'the fleet to connect, as the brokers and the devices see it')
      await a.close()
      aClosed = true
      await waitFor(() => b.broker.connectionCount === 20, 30_000, 'every device on the remaining broker')
      await waitFor(() => snapshot?.connected === 20 && snapshot.drops === 10 && snapshot.reconnects === 10, 30_000,
        () => `the simulator to see the 10 dropped devices back, last seen ${JSON.stringify(snapshot)}`)
      stop.abort()
      const summary = await run
      // 20 first connections in full; the 10 dropped devices back on b with their tickets from a.
      expect(summary).toMatchObject({ drops: 10, reconnects: 10, tlsHandshakesFull: 20, tlsHandshakesResumed: 10 })
    } finally {
      stop.abort()
      if (!aClosed) await a.close()
      await b.close()
      fleet.cleanup()
    }
  }, 120_000)
})
