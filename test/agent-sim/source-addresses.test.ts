import { describe, expect, it } from 'vitest'
import { loopbackAddress, runSimulation } from '../../agent-sim/index.ts'
import { useFleetWithBroker } from '../helpers/broker.ts'

// Two TLS handshakes at once per source address: a simulated fleet from one address is refused at once.
const setup = useFleetWithBroker({ maxHandshakesPerAddress: 2 })

describe('the simulator\'s source addresses', () => {
  it('from one address, a fleet connecting at once meets the broker\'s per-address limit', async () => {
    const summary = await runSimulation({ dataDir: setup.fleet.dataDir, brokerUrl: setup.broker.url, devices: 24, intervalMs: 1_000, durationMs: 200, seed: 5, connectConcurrency: 24 })
    expect(summary.connectErrors).toBeGreaterThan(0)
    expect(setup.broker.events.some((event) => event.type === 'connection-limit')).toBe(true)
  })

  it('with localAddress, each device connects from its own address and none is refused', async () => {
    const before = setup.broker.events.length
    const summary = await runSimulation({
      dataDir: setup.fleet.dataDir, brokerUrl: setup.broker.url, devices: 24, intervalMs: 1_000, durationMs: 200, seed: 5, connectConcurrency: 24,
      localAddress: loopbackAddress,
    })
    expect(summary).toMatchObject({ connected: 24, connectErrors: 0 })
    const events = setup.broker.events.slice(before)
    expect(events.filter((event) => event.type === 'connection-limit')).toEqual([])
    const addresses = new Set(events.filter((event) => event.type === 'connect').map((event) => event.remoteAddress))
    expect(addresses.size).toBe(24)
    expect([...addresses].every((address) => address?.startsWith('127.2.'))).toBe(true)
  })

  it('gives distinct addresses far into a large fleet, never a .0 or .255', () => {
    const addresses = Array.from({ length: 200_000 }, (_, i) => loopbackAddress(i))
    expect(new Set(addresses).size).toBe(200_000)
    expect(addresses.filter((address) => /\.(0|255)(\.|$)/.test(address))).toEqual([])
  })
})
