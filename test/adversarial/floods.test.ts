/**
 * Floods against the broker (issue 11, STRIDE D): while each runs, a good
 * device on its own certificate must still connect and have every QoS 1
 * publish acknowledged, and the broker must stay up. Attackers use other
 * loopback addresses than the good device (see test/helpers/floods.ts).
 * The figures (rates, PUBACK p99) are in `npm run bench:adversarial`.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { waitFor } from '../helpers/broker.ts'
import { startBrokerProcess, type BrokerProcess } from '../helpers/broker-process.ts'
import { createTestFleet, type TestFleet } from '../helpers/fleet.ts'
import {
  type Attack, captureClientHello, connectStorm, handshakeStorm, idleSockets, loopbackAddresses, probeGoodDevice,
  slowHandshakes, subscriptionBomb, topicDepthBomb,
} from '../helpers/floods.ts'
import { deviceContext } from '../helpers/raw-mqtt.ts'

/**
 * Small enough that a flood reaches it on this machine, and above 1,000 so
 * that a broker reserving slots for authenticated sessions (1,000 by
 * default) still accepts the setting.
 */
const MAX_CONNECTIONS = 1_200
const HANDSHAKE_TIMEOUT_MS = 4_000
const STORMERS = Array.from({ length: 16 }, (_, i) => `storm-${i + 1}`)
const topic = (id: string): string => `places/block-a/housing/${id}/telemetry`

let fleet: TestFleet
let broker: BrokerProcess

beforeAll(async () => {
  fleet = await createTestFleet(['good-1', 'bomb-1', 'depth-1', ...STORMERS].map((deviceId) => ({ deviceId, kind: 'housing', site: 'block-a' })))
})

// A fresh broker per flood: what one flood leaves behind must not decide the next test.
beforeEach(async () => {
  broker = await startBrokerProcess(fleet, { maxConnections: MAX_CONNECTIONS, handshakeTimeoutMs: HANDSHAKE_TIMEOUT_MS, connectTimeoutMs: HANDSHAKE_TIMEOUT_MS })
})

afterEach(async () => {
  await broker?.stop()
})

afterAll(() => {
  fleet?.cleanup()
})

/** Starts the attack, lets it build up, probes the good device during it, stops it; asserts what the device got. */
async function goodDeviceDuring (start: () => Attack, buildUp: (attack: Attack) => Promise<void>): Promise<Attack> {
  const attack = start()
  try {
    await buildUp(attack)
    const probe = await probeGoodDevice(broker.url, fleet, 'good-1', topic('good-1'), 3, 5)
    expect(broker.exit(), `the broker exited during "${attack.name}": ${broker.stderrTail()}`).toBeUndefined()
    expect(probe.errors, `good device during "${attack.name}" (${attack.attempts()} attempts)`).toEqual([])
    expect(probe.connectsOk).toBe(probe.connects)
    expect(probe.acked).toBe(probe.publishes)
  } finally {
    await attack.stop()
  }
  return attack
}

/**
 * Until the attacker holds as many open connections as the broker allows
 * (a broker without a per-address defence is then full), or 10 s pass (one
 * with it keeps refusing them); then 2 s for the broker to accept the
 * backlog, so the good device does not slip in ahead of the flood.
 */
const holdingAll = async (attack: Attack): Promise<void> => {
  await waitFor(() => attack.holding() >= MAX_CONNECTIONS, 10_000, 'the flood to fill the broker').catch(() => {})
  await new Promise((resolve) => setTimeout(resolve, 2_000))
}
const attempts = (n: number) => (attack: Attack) => waitFor(() => attack.attempts() >= n, 60_000, `${n} attempts of "${attack.name}"`)
const context = (id: string) => deviceContext(fleet, fleet.device(id))

describe('floods: a good device keeps working', () => {
  it('idle TCP sockets beyond the connection limit, from one address; the broker closes them', async () => {
    const count = MAX_CONNECTIONS + 50
    const attack = await goodDeviceDuring(() => idleSockets(broker.port, count), holdingAll)
    // Sockets the broker closed were opened again: it does close idle sockets (handshake timeout).
    expect(attack.attempts()).toBeGreaterThan(count)
  }, 120_000)

  it('idle TCP sockets beyond the connection limit, from 64 addresses', async () => {
    const count = MAX_CONNECTIONS + 50
    await goodDeviceDuring(() => idleSockets(broker.port, count, loopbackAddresses(64, 2)), holdingAll)
  }, 120_000)

  it('slow handshakes (a ClientHello a byte a second) beyond the connection limit', async () => {
    const hello = await captureClientHello(context('storm-1'))
    const count = MAX_CONNECTIONS + 50
    await goodDeviceDuring(() => slowHandshakes(broker.port, count, hello), holdingAll)
  }, 120_000)

  it('a handshake storm from one address', async () => {
    await goodDeviceDuring(() => handshakeStorm(broker.port, context('storm-1'), 16, ['127.0.0.7']), attempts(200))
  }, 120_000)

  it('a handshake storm from 64 addresses', async () => {
    await goodDeviceDuring(() => handshakeStorm(broker.port, context('storm-1'), 16, loopbackAddresses(64, 8)), attempts(200))
  }, 120_000)

  it('a CONNECT storm with valid certificates', async () => {
    const identities = STORMERS.map((deviceId) => ({ deviceId, context: context(deviceId) }))
    await goodDeviceDuring(() => connectStorm(broker.port, identities), attempts(200))
  }, 120_000)

  it('a subscription bomb: thousands of topic filters in one SUBSCRIBE', async () => {
    await goodDeviceDuring(() => subscriptionBomb(broker.port, { deviceId: 'bomb-1', context: context('bomb-1'), topic: topic('bomb-1') }, 5_000), attempts(5))
  }, 120_000)

  it('a topic-depth bomb: topics and filters with thousands of levels', async () => {
    await goodDeviceDuring(() => topicDepthBomb(broker.port, { deviceId: 'depth-1', context: context('depth-1'), topic: topic('depth-1') }, 5_000), attempts(20))
  }, 120_000)
})
