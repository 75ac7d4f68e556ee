import { execFile } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { loopbackAddress, runSimulation } from '../../agent-sim/index.ts'
import { useFleetWithBroker } from '../helpers/broker.ts'

// Two TLS handshakes at once per source address: a simulated fleet from one address is refused at once.
const setup = useFleetWithBroker({ maxHandshakesPerAddress: 2 })

/** `placeguard sim …` on the test fleet, run asynchronously (the broker is in this process): its exit code and output. */
function sim (...args: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['bin/placeguard.js', '--data-dir', setup.fleet.dataDir, 'sim', ...args], { encoding: 'utf8' }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr })
    })
  })
}

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

  it('placeguard sim --loopback-sources: the CLI spreads the fleet, and says why when one address was held back', async () => {
    const spread = await sim('--devices', '24', '--broker', setup.broker.url, '--interval', '1s', '--duration', '1s', '--json', '--loopback-sources')
    expect(spread.code).toBe(0)
    expect(JSON.parse(spread.stdout)).toMatchObject({ connected: 24, connectErrors: 0 })
    expect(spread.stderr).not.toContain('--loopback-sources')
    // From one address: refused attempts, and perhaps publishes lost to the late connections (exit 1); the summary either way.
    const one = await sim('--devices', '24', '--broker', setup.broker.url, '--interval', '1s', '--duration', '1s', '--json')
    expect((JSON.parse(one.stdout) as { connectErrors: number }).connectErrors).toBeGreaterThan(0)
    expect(one.stderr).toContain('connection attempts failed. If the broker refused them (a PlaceGuard broker runs at most broker.maxHandshakesPerAddress handshakes from one address at once), --loopback-sources gives each simulated device its own address.')
  })

  it('refuses --loopback-sources for a broker elsewhere, or with a network server', async () => {
    const elsewhere = await sim('--devices', '2', '--loopback-sources', '--broker', 'mqtts://broker.example:8883')
    expect(elsewhere.code).toBe(2)
    expect(elsewhere.stderr).toContain('PG_ERR_INPUT_INVALID: --loopback-sources: devices from 127.2.x.y reach only a broker on this machine\'s 127.0.0.0/8, not mqtts://broker.example:8883')
    const named = await sim('--devices', '2', '--loopback-sources', '--broker', 'mqtts://localhost:8883')
    expect(named.code).toBe(2)
    const network = await sim('--devices', '2', '--loopback-sources', '--broker', setup.broker.url, '--network', 'chirpstack')
    expect(network.code).toBe(2)
    expect(network.stderr).toContain('--loopback-sources: does not apply with --network')
  })

  it('gives distinct addresses far into a large fleet, never a .0 or .255', () => {
    const addresses = Array.from({ length: 200_000 }, (_, i) => loopbackAddress(i))
    expect(new Set(addresses).size).toBe(200_000)
    expect(addresses.filter((address) => /\.(0|255)(\.|$)/.test(address))).toEqual([])
  })
})
