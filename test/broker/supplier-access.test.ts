/**
 * A supplier's remote access through the real broker (issue 17): Debian's
 * mosquitto clients command devices with a supplier certificate. Inside
 * an access window a command to its kinds and sites reaches the device
 * subscribed to its cmd topic and is reported (size and SHA-256, never the
 * payload); anything else is refused and reported. The broker's clock is
 * injected and moved past the window's end, so nothing waits on real time.
 */
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import type { MqttClient } from 'mqtt'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { SecurityEvent } from '../../broker/index.ts'
import { AlertBook } from '../../detection/alert-book.ts'
import { loadPolicyDirectory, PolicyEngine } from '../../policies/index.ts'
import { connectClient, type RunningBroker, startBroker, waitFor } from '../helpers/broker.ts'
import { createTestFleet, type TestFleet } from '../helpers/fleet.ts'
import { mosquittoPub, mosquittoSub, type Subscriber } from '../helpers/mosquitto-clients.ts'

const HOUR_MS = 3_600_000
const FLOOD_CMD = 'places/riverside/flood/flood-1/cmd'
const HOUSING_CMD = 'places/riverside/housing/house-1/cmd'
const COMMAND = '{"action":"recalibrate","zero_cm":12}'

let fleet: TestFleet
let running: RunningBroker
/** Added to the broker's clock: moving it two hours on closes the supplier's window. */
let offsetMs = 0
let flood: Subscriber
let house: Subscriber

function files (id: string): { cafile: string, cert: string, key: string } {
  return { cafile: fleet.paths.caCert, ...fleet.device(id) }
}

beforeAll(async () => {
  fleet = await createTestFleet([
    { deviceId: 'flood-1', kind: 'flood', site: 'riverside' },
    { deviceId: 'house-1', kind: 'housing', site: 'riverside' },
  ])
  const now = Date.now()
  await fleet.pki.issueSupplier({
    supplierId: 'acme-pumps', kinds: ['flood', 'energy'], sites: ['riverside', 'harbour'],
    windows: [{ reason: 'pump servicing', from: new Date(now - HOUR_MS).toISOString(), until: new Date(now + HOUR_MS).toISOString() }],
  })
  // A second supplier, its window open all week, whose commands mark "everything sent before has arrived".
  await fleet.pki.issueSupplier({
    supplierId: 'river-care', kinds: ['flood', 'housing'], sites: ['riverside'],
    windows: [{ from: new Date(now - HOUR_MS).toISOString(), until: new Date(now + 7 * 24 * HOUR_MS).toISOString() }],
  })
  running = await startBroker(fleet, {}, {
    clock: { now: () => Date.now() + offsetMs },
    supplierGrant: (id) => fleet.pki.supplierGrant(id),
  })
  // Devices read their own commands: a device may subscribe inside its own topic root (broker/acl.ts).
  flood = mosquittoSub(running.port, files('flood-1'), 'flood-1', [FLOOD_CMD])
  house = mosquittoSub(running.port, files('house-1'), 'house-1', [HOUSING_CMD])
  await Promise.all([flood.ready, house.ready])
})

afterAll(async () => {
  flood?.stop()
  house?.stop()
  await running?.close()
  fleet?.cleanup()
})

/** The broker's event through the shipped policies into an alert book: the alert an operator would see. */
async function alertFor (event: SecurityEvent) {
  const clock = { now: () => Date.now() }
  const engine = new PolicyEngine(loadPolicyDirectory(join(import.meta.dirname, '..', '..', 'policies')).map((l) => l.policy), clock)
  const book = new AlertBook({ clock })
  const [finding] = engine.onSecurityEvent(event).findings
  expect(finding, 'a finding from the shipped policies').toBeDefined()
  return (await book.raise(finding!, event)).alert
}

/**
 * Another supplier's command to the same device: once it has arrived, a
 * refused one sent before it would have too, had it been let through.
 * (The device itself cannot send it: its client id would take over its
 * own subscriber's session.)
 */
async function marker (topic: string, subscriber: Subscriber, text: string): Promise<void> {
  expect((await mosquittoPub(running.port, files('river-care'), 'river-care', topic, text)).code).toBe(0)
  await waitFor(() => subscriber.lines.includes(`${topic} ${text}`), 10_000, 'the marker command')
}

describe('a supplier inside its access window', () => {
  it('commands a device of its kind and site: delivered, and reported with size and SHA-256 but not the payload', async () => {
    const published = await mosquittoPub(running.port, files('acme-pumps'), 'acme-pumps', FLOOD_CMD, COMMAND)
    expect(published.code, published.stderr).toBe(0)
    await waitFor(() => flood.lines.includes(`${FLOOD_CMD} ${COMMAND}`), 10_000, 'the command at flood-1')
    const event = await running.waitForEvent((e) => e.type === 'supplier-command' && e.deviceId === 'acme-pumps')
    expect(event.details).toMatchObject({
      role: 'supplier', targetDeviceId: 'flood-1', targetSite: 'riverside', targetKind: 'flood',
      payloadBytes: Buffer.byteLength(COMMAND), payloadSha256: createHash('sha256').update(COMMAND).digest('hex'),
    })
    expect(event.topic).toBe(FLOOD_CMD)
    expect(JSON.stringify(event)).not.toContain('recalibrate')
  })

  it('is refused a kind it does not maintain, and telemetry: acl-denied with role supplier, nothing delivered', async () => {
    for (const topic of [HOUSING_CMD, 'places/riverside/flood/flood-1/telemetry', 'places/riverside/flood/flood-1/cmd/extra']) {
      await mosquittoPub(running.port, files('acme-pumps'), 'acme-pumps', topic, COMMAND)
      const denied = await running.waitForEvent((e) => e.type === 'acl-denied' && e.deviceId === 'acme-pumps' && e.topic === topic)
      expect(denied.details?.role).toBe('supplier')
    }
    await marker(HOUSING_CMD, house, 'house-marker')
    expect(house.lines).toEqual([`${HOUSING_CMD} house-marker`])
    expect(running.events.filter((e) => e.type === 'supplier-command' && e.deviceId === 'acme-pumps')).toHaveLength(1)
  })

  it('is refused a site it does not maintain', async () => {
    const topic = 'places/depot/flood/flood-9/cmd'
    await mosquittoPub(running.port, files('acme-pumps'), 'acme-pumps', topic, COMMAND)
    const denied = await running.waitForEvent((e) => e.type === 'acl-denied' && e.topic === topic)
    expect(denied).toMatchObject({ deviceId: 'acme-pumps', reason: 'a supplier may not command site depot' })
  })

  it('may not subscribe, not even to the commands it sends', async () => {
    const client: MqttClient = await connectClient(running.url, fleet, fleet.device('acme-pumps'), 'acme-pumps')
    try {
      const granted = await client.subscribeAsync([FLOOD_CMD, 'places/#'], { qos: 1 }).then((grants) => grants.map((g) => g.qos),
        (error: { packet: { granted: number[] } }) => error.packet.granted)
      expect(granted).toEqual([128, 128])
      const denied = await running.waitForEvent((e) => e.type === 'acl-denied' && e.deviceId === 'acme-pumps' && e.reason === 'a supplier may not subscribe')
      expect(denied.details?.role).toBe('supplier')
    } finally {
      client.end(true)
    }
  })
})

describe('a supplier outside its access windows', () => {
  it('is refused a command once its window closes mid-session: connection closed, supplier-outside-window, nothing delivered', async () => {
    const client: MqttClient = await connectClient(running.url, fleet, fleet.device('acme-pumps'), 'acme-pumps')
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()))
    offsetMs = 2 * HOUR_MS
    try {
      client.publish(FLOOD_CMD, 'late command', { qos: 1 })
      await closed
      const event = await running.waitForEvent((e) => e.type === 'supplier-outside-window' && e.details?.phase === 'command')
      expect(event).toMatchObject({ deviceId: 'acme-pumps', topic: FLOOD_CMD, details: { role: 'supplier' } })
      await marker(FLOOD_CMD, flood, 'flood-marker')
      expect(flood.lines).toEqual([`${FLOOD_CMD} ${COMMAND}`, `${FLOOD_CMD} flood-marker`])
    } finally {
      client.end(true)
      offsetMs = 0
    }
  })

  it('cannot connect: CONNACK not authorized and supplier-outside-window', async () => {
    offsetMs = 2 * HOUR_MS
    try {
      const refused = await mosquittoPub(running.port, files('acme-pumps'), 'acme-pumps', FLOOD_CMD, 'too late')
      expect(refused.code).not.toBe(0)
      expect(refused.stderr.toLowerCase()).toContain('not authori')
      const event = await running.waitForEvent((e) => e.type === 'supplier-outside-window' && e.details?.phase === 'connect')
      expect(event).toMatchObject({ deviceId: 'acme-pumps', details: { role: 'supplier' } })
      expect(await alertFor(event)).toMatchObject({
        policy: 'supplier-access-outside-window', deviceId: 'acme-pumps', severity: 'high', status: 'open', stride: 'Elevation of privilege', attack: 'T0822 External Remote Services',
      })
    } finally {
      offsetMs = 0
    }
  })

  it('is refused at connect by a broker given no grants: fail closed', async () => {
    const bare = await startBroker(fleet, {}, {})
    try {
      const refused = await mosquittoPub(bare.port, files('acme-pumps'), 'acme-pumps', FLOOD_CMD, COMMAND)
      expect(refused.code).not.toBe(0)
      const failed = await bare.waitForEvent((e) => e.type === 'auth-failed' && e.deviceId === 'acme-pumps')
      expect(failed.code).toBe('SUPPLIER_NO_GRANT')
    } finally {
      await bare.close()
    }
  })
})
