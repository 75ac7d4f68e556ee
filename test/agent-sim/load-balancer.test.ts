/**
 * Two PlaceGuard brokers behind HAProxy in TCP mode (TLS passed through,
 * so each broker authenticates the devices' own certificates), and a
 * simulated fleet given only HAProxy's URL. One broker is a separate
 * process killed with SIGKILL mid-run; every device must be connected again,
 * through HAProxy, to the other, and the simulator's reconnection figures
 * must say so. The survivor runs in this process, so its security events
 * are visible: HAProxy's health checks must not show up there.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runSimulation, type SimSnapshot } from '../../agent-sim/index.ts'
import { startBroker, waitFor, type RunningBroker } from '../helpers/broker.ts'
import { startBrokerProcess, type BrokerProcess } from '../helpers/broker-process.ts'
import { createTestFleet, type TestFleet } from '../helpers/fleet.ts'
import { startHaproxy, type RunningHaproxy } from '../helpers/haproxy.ts'

const DEVICES = 40

let fleet: TestFleet
let victim: BrokerProcess
let survivor: RunningBroker
let lb: RunningHaproxy

beforeAll(async () => {
  fleet = await createTestFleet()
  victim = await startBrokerProcess(fleet)
  survivor = await startBroker(fleet)
  lb = await startHaproxy({ backends: [{ name: 'broker-1', port: victim.port }, { name: 'broker-2', port: survivor.port }] })
})

afterAll(async () => {
  await lb?.stop()
  await victim?.stop()
  await survivor?.close()
  fleet?.cleanup()
})

describe('a simulated fleet behind HAProxy (TCP mode)', () => {
  it('is spread over both brokers, and all of it is back on the survivor soon after one is killed', async () => {
    let snapshot: SimSnapshot | undefined
    // Runs until the simulator has seen its devices back: on a loaded machine the moves can outlast any fixed run.
    const stop = new AbortController()
    const run = runSimulation({
      dataDir: fleet.dataDir, brokerUrl: lb.url, devices: DEVICES, intervalMs: 300, durationMs: 0, signal: stop.signal, seed: 21,
      onProgress: (s) => { snapshot = s },
    })
    try {
      const onVictim = async (): Promise<number> => (await lb.servers())['broker-1']!.connections
      let before = { victim: 0, survivor: 0 }
      await waitFor(() => {
        void onVictim().then((connections) => { before = { victim: connections, survivor: survivor.broker.connectionCount } })
        return before.victim + before.survivor === DEVICES && snapshot?.connected === DEVICES
      }, 30_000, 'the fleet to connect through HAProxy')
      // leastconn spreads the fleet; how evenly depends on how the connects interleave.
      expect(before.victim).toBeGreaterThan(0)
      expect(before.survivor).toBeGreaterThan(0)

      const killed = new Promise((resolve) => victim.child.once('exit', resolve))
      const killedAt = performance.now()
      victim.child.kill('SIGKILL')
      await killed
      await waitFor(() => survivor.broker.connectionCount === DEVICES, 30_000, `all ${DEVICES} devices on the survivor`)
        .catch((error: Error) => { throw new Error(`${error.message}: it has ${survivor.broker.connectionCount}; HAProxy log:\n${lb.logs().slice(-3000)}`) })
      const allBackMs = Math.round(performance.now() - killedAt)
      const servers = await lb.servers()
      expect(servers['broker-1']).toMatchObject({ connections: 0 })
      expect(servers['broker-1']!.status).toMatch(/^DOWN/)
      expect(servers['broker-2']).toMatchObject({ status: 'UP', connections: DEVICES })

      await waitFor(() => snapshot?.connected === DEVICES && snapshot.drops === before.victim && snapshot.reconnects === before.victim, 30_000,
        () => `the simulator to see its ${before.victim} devices back, last seen ${JSON.stringify(snapshot)}`)
      stop.abort()
      const summary = await run
      console.error(`HAProxy: ${before.victim}/${before.survivor} devices on broker-1/broker-2 before the kill; all ${DEVICES} on broker-2 ${allBackMs} ms after it; ` +
        `time to reconnect p50 ${summary.timeToReconnectP50Ms} ms, p99 ${summary.timeToReconnectP99Ms} ms, max ${summary.timeToReconnectMaxMs} ms; connect errors ${summary.connectErrors}`)
      // Only the killed broker's devices lost their connection, and each came back, through the one URL.
      expect(summary).toMatchObject({
        devices: DEVICES, connected: DEVICES, drops: before.victim, reconnects: before.victim, dropsNotReconnected: 0,
        reconnectsByUrl: { [lb.url]: before.victim },
      })
      // Back-off from 1 s (full jitter), HAProxy redispatching a refused connect: a generous bound, not a benchmark.
      expect(summary.timeToReconnectMaxMs).toBeLessThan(15_000)
      expect(summary.timeToReconnectP50Ms).toBeLessThanOrEqual(summary.timeToReconnectMaxMs!)
      // HAProxy's layer-4 checks reset the connection before the handshake
      // completes: the broker never accepts them, so they raise no tls-rejected
      // event (a cert-rejected alert against the load balancer).
      expect(survivor.events.filter((event) => event.type === 'tls-rejected')).toEqual([])
    } finally {
      stop.abort()
      await run.catch(() => undefined)
    }
  }, 120_000)
})
