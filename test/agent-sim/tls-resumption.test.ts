/**
 * Simulated devices keep their TLS session: when their broker goes away
 * they come back, after their jittered back-off, to another node holding the
 * same ticket secret (here: the same data directory) by resuming it.
 */
import { describe, expect, it } from 'vitest'
import { runSimulation } from '../../agent-sim/index.ts'
import { startBroker, waitFor } from '../helpers/broker.ts'
import { createTestFleet } from '../helpers/fleet.ts'

describe('placeguard sim: TLS session resumption on reconnect', () => {
  it('devices dropped by a broker reconnect by resuming their TLS sessions', async () => {
    const fleet = await createTestFleet()
    const a = await startBroker(fleet)
    const b = await startBroker(fleet)
    let aClosed = false
    try {
      // Long enough for the dropped devices' back-off and handshakes on a loaded machine; the summary says what happened.
      const run = runSimulation({ dataDir: fleet.dataDir, brokerUrls: [a.url, b.url], devices: 20, intervalMs: 500, durationMs: 15_000, seed: 21 })
      // Connected as MQTT (the broker's connect event, at CONNACK), not only past TLS: a device still in its
      // CONNECT when a closes never had a session there to lose, and is no drop.
      const connected = (broker: typeof a): number => broker.events.filter((e) => e.type === 'connect').length
      await waitFor(() => connected(a) + connected(b) === 20, 30_000, 'the fleet to connect')
      await a.close()
      aClosed = true
      await waitFor(() => b.broker.connectionCount === 20, 30_000, 'every device on the remaining broker')
      const summary = await run
      // 20 first connections in full; the 10 dropped devices back on b with their tickets from a.
      expect(summary).toMatchObject({ drops: 10, reconnects: 10, tlsHandshakesFull: 20, tlsHandshakesResumed: 10 })
    } finally {
      if (!aClosed) await a.close()
      await b.close()
      fleet.cleanup()
    }
  }, 60_000)
})
