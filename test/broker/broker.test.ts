import { execFileSync } from 'node:child_process'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { SecurityEvent } from '../../broker/index.ts'
import { collectorFiles, connectClient, type RunningBroker, startBroker, waitFor } from '../helpers/broker.ts'
import { createTestFleet, type TestFleet } from '../helpers/fleet.ts'
import { mosquittoPub, mosquittoSub } from '../helpers/mosquitto-clients.ts'

const DAY = 86_400_000
const flood = (id: string) => ({ deviceId: id, kind: 'flood', site: 'riverside' })
const TELEMETRY = (id: string) => `places/riverside/flood/${id}/telemetry`

let fleet: TestFleet
let foreign: TestFleet
let running: RunningBroker

beforeAll(async () => {
  fleet = await createTestFleet([
    flood('flood-001'), flood('flood-002'), flood('revoked-001'), flood('live-revoke-001'), flood('clone-001'),
    { ...flood('expired-001'), notBefore: '2020-01-01T00:00:00Z', notAfter: '2020-02-01T00:00:00Z' },
    { ...flood('future-001'), notBefore: new Date(Date.now() + 10 * DAY), notAfter: new Date(Date.now() + 20 * DAY) },
    { deviceId: 'meter-001', kind: 'energy', site: 'depot' },
  ])
  await fleet.pki.revoke('revoked-001')
  // Another PlaceGuard installation: a real CA, just not ours, issuing the same id.
  foreign = await createTestFleet([flood('flood-001')])
  running = await startBroker(fleet)
})

afterAll(async () => {
  await running?.close()
  fleet?.cleanup()
  foreign?.cleanup()
})

const ca = () => ({ cafile: fleet.paths.caCert })
const deviceTls = (id: string, from: TestFleet = fleet) => ({ cafile: fleet.paths.caCert, ...from.device(id) })
const isRejection = (reason: string, match: Partial<SecurityEvent> = {}) => (e: SecurityEvent) =>
  e.type === 'tls-rejected' && e.reason === reason && Object.entries(match).every(([k, v]) => e[k as keyof SecurityEvent] === v)

describe('a device with a valid certificate', () => {
  it('publishes with mosquitto_pub and the collector receives it, with connect events on $SYS', async () => {
    const collector = mosquittoSub(running.port, { cafile: fleet.paths.caCert, cert: fleet.paths.collectorCert, key: fleet.paths.collectorKey },
      'collector', ['places/#', '$SYS/placeguard/events/#'])
    try {
      await collector.ready
      const result = await mosquittoPub(running.port, deviceTls('flood-001'), 'flood-001', TELEMETRY('flood-001'), '{"level_cm":12}')
      expect(result.code, result.stderr).toBe(0)
      await waitFor(() => collector.lines.some((l) => l === `${TELEMETRY('flood-001')} {"level_cm":12}`), 5_000, 'telemetry at the collector')
      const isDeviceConnect = (l: string) => l.startsWith('$SYS/placeguard/events/connect ') && l.includes('"deviceId":"flood-001"')
      await waitFor(() => collector.lines.some(isDeviceConnect), 5_000, 'connect event')
      const connect = JSON.parse(collector.lines.find(isDeviceConnect)!.slice('$SYS/placeguard/events/connect '.length))
      expect(connect).toMatchObject({ type: 'connect', deviceId: 'flood-001', site: 'riverside', kind: 'flood' })
      expect(connect.remoteAddress).toMatch(/^127\.0\.0\.1:\d+$/)
      expect(Date.parse(connect.at)).not.toBeNaN()
    } finally {
      collector.stop()
    }
  })

  it('gets the device id as client id when it sends an empty one', async () => {
    const client = await connectClient(running.url, fleet, fleet.device('flood-002'), '', { clean: true })
    await running.waitForEvent((e) => e.type === 'connect' && e.deviceId === 'flood-002')
    client.end(true)
  })

  it('is refused when its client id is not its certificate id', async () => {
    const result = await mosquittoPub(running.port, deviceTls('flood-001'), 'flood-002', TELEMETRY('flood-002'), 'x')
    expect(result.code).not.toBe(0)
    const event = await running.waitForEvent((e) => e.type === 'auth-failed' && e.code === 'CLIENT_ID_MISMATCH')
    expect(event.deviceId).toBe('flood-001')
  })
})

describe('refused TLS handshakes, each with a security event naming the reason', () => {
  it('no client certificate', async () => {
    const result = await mosquittoPub(running.port, ca(), 'flood-001', TELEMETRY('flood-001'), 'x')
    expect(result.code).not.toBe(0)
    await running.waitForEvent(isRejection('no client certificate'))
  })

  it('a certificate from a foreign CA; its claimed id is reported but not trusted', async () => {
    const result = await mosquittoPub(running.port, deviceTls('flood-001', foreign), 'flood-001', TELEMETRY('flood-001'), 'x')
    expect(result.code).not.toBe(0)
    const event = await running.waitForEvent(isRejection('certificate from an unknown CA'))
    expect(event.deviceId).toBeUndefined()
    expect(event.claimedId).toBe('flood-001')
  })

  it('a self-signed certificate (made by openssl) claiming a real device identity', async () => {
    const dir = foreign.dataDir
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '30',
      '-subj', '/CN=flood-001', '-addext', 'subjectAltName=URI:urn:placeguard:device:riverside:flood:flood-001',
      '-addext', 'extendedKeyUsage=clientAuth', '-keyout', join(dir, 'self.key'), '-out', join(dir, 'self.crt')], { stdio: 'ignore' })
    const result = await mosquittoPub(running.port, { cafile: fleet.paths.caCert, cert: join(dir, 'self.crt'), key: join(dir, 'self.key') },
      'flood-001', TELEMETRY('flood-001'), 'x')
    expect(result.code).not.toBe(0)
    const event = await running.waitForEvent(isRejection('self-signed certificate')).catch((error: Error) => {
      throw new Error(`${error.message}: ${JSON.stringify(running.events.filter((e) => e.type === 'tls-rejected'))}`)
    })
    expect(event.deviceId).toBeUndefined()
  })

  it('an expired certificate, attributed to its device', async () => {
    const result = await mosquittoPub(running.port, deviceTls('expired-001'), 'expired-001', TELEMETRY('expired-001'), 'x')
    expect(result.code).not.toBe(0)
    await running.waitForEvent(isRejection('certificate expired', { deviceId: 'expired-001', code: 'CERT_HAS_EXPIRED' }))
  })

  it('a certificate not yet valid', async () => {
    const result = await mosquittoPub(running.port, deviceTls('future-001'), 'future-001', TELEMETRY('future-001'), 'x')
    expect(result.code).not.toBe(0)
    await running.waitForEvent(isRejection('certificate not yet valid', { deviceId: 'future-001' }))
  })

  it('a revoked certificate, attributed to its device', async () => {
    const result = await mosquittoPub(running.port, deviceTls('revoked-001'), 'revoked-001', TELEMETRY('revoked-001'), 'x')
    expect(result.code).not.toBe(0)
    await running.waitForEvent(isRejection('certificate revoked', { deviceId: 'revoked-001', code: 'CERT_REVOKED' }))
  })

  it('the broker\'s own server certificate used as a client certificate', async () => {
    const result = await mosquittoPub(running.port, { cafile: fleet.paths.caCert, cert: fleet.paths.serverCert, key: fleet.paths.serverKey },
      'localhost', TELEMETRY('flood-001'), 'x')
    expect(result.code).not.toBe(0)
    await running.waitForEvent((e) => e.type === 'tls-rejected' && e.reason === 'certificate not issued for client authentication')
  })
})

describe('topic access control', () => {
  it('a publish outside the device\'s own topic is not delivered, closes the connection and raises an event', async () => {
    const collector = await connectClient(running.url, fleet, collectorFiles(fleet), 'collector-acl')
    const received: string[] = []
    collector.on('message', (topic) => received.push(topic))
    await collector.subscribeAsync('places/#', { qos: 1 })
    const device = await connectClient(running.url, fleet, fleet.device('flood-001'), 'flood-001')
    const closed = new Promise<void>((resolve) => device.once('close', () => resolve()))
    device.publish(TELEMETRY('flood-002'), 'spoofed', { qos: 0 })
    await closed
    const event = await running.waitForEvent((e) => e.type === 'acl-denied' && e.topic === TELEMETRY('flood-002'))
    expect(event).toMatchObject({ deviceId: 'flood-001', reason: 'publish outside own topic' })
    // The same collector still receives the device's own topic, so silence above is the ACL, not a dead path.
    const again = await connectClient(running.url, fleet, fleet.device('flood-001'), 'flood-001')
    await again.publishAsync(TELEMETRY('flood-001'), 'own', { qos: 1 })
    await waitFor(() => received.includes(TELEMETRY('flood-001')), 5_000, 'own telemetry')
    expect(received).not.toContain(TELEMETRY('flood-002'))
    again.end(true)
    collector.end(true)
  })

  it('a device may not publish to $SYS', async () => {
    const device = await connectClient(running.url, fleet, fleet.device('flood-002'), 'flood-002')
    device.publish('$SYS/placeguard/events/connect', '{"type":"forged"}')
    await running.waitForEvent((e) => e.type === 'acl-denied' && e.deviceId === 'flood-002' && e.reason === 'publish to a reserved $ topic')
    device.end(true)
  })

  it('a device\'s places/# subscription is refused and receives nothing of others', async () => {
    const snoop = await connectClient(running.url, fleet, fleet.device('flood-002'), 'flood-002')
    const received: string[] = []
    snoop.on('message', (topic) => received.push(topic))
    // SUBACK 0x80 (failure) for filters outside the device's subtree; mqtt.js turns it into a rejection.
    await expect(snoop.subscribeAsync('places/#', { qos: 1 })).rejects.toThrow(/Subscribe error/)
    await expect(snoop.subscribeAsync('$SYS/#', { qos: 1 })).rejects.toThrow(/Subscribe error/)
    const granted = await snoop.subscribeAsync('places/riverside/flood/flood-002/#', { qos: 1 })
    expect(granted.map((g) => g.qos)).toEqual([1])
    await running.waitForEvent((e) => e.type === 'acl-denied' && e.deviceId === 'flood-002' && e.topic === 'places/#')
    const other = await connectClient(running.url, fleet, fleet.device('meter-001'), 'meter-001')
    await other.publishAsync('places/depot/energy/meter-001/telemetry', 'reading', { qos: 1 })
    // The device's own subtree still works: publish to it and see it arrive.
    await snoop.publishAsync('places/riverside/flood/flood-002/telemetry', 'mine', { qos: 1 })
    await waitFor(() => received.includes('places/riverside/flood/flood-002/telemetry'), 5_000, 'own message')
    expect(received).toEqual(['places/riverside/flood/flood-002/telemetry'])
    other.end(true)
    snoop.end(true)
  })

  it('the collector role may not publish', async () => {
    const collector = await connectClient(running.url, fleet, collectorFiles(fleet), 'collector-pub')
    const closed = new Promise<void>((resolve) => collector.once('close', () => resolve()))
    collector.publish(TELEMETRY('flood-001'), 'forged')
    await closed
    await running.waitForEvent((e) => e.type === 'acl-denied' && e.deviceId === 'collector:collector')
  })
})

describe('identity', () => {
  it('reports a duplicate identity when the same certificate connects twice', async () => {
    const first = await connectClient(running.url, fleet, fleet.device('clone-001'), 'clone-001')
    const firstClosed = new Promise<void>((resolve) => first.once('close', () => resolve()))
    const second = await connectClient(running.url, fleet, fleet.device('clone-001'), 'clone-001')
    const event = await running.waitForEvent((e) => e.type === 'duplicate-identity' && e.deviceId === 'clone-001')
    expect(event.details).toMatchObject({ sameCertificate: true })
    expect(event.details?.otherRemoteAddress).toMatch(/^127\.0\.0\.1:\d+$/)
    await firstClosed // [MQTT-3.1.4-2] the earlier session is taken over
    second.end(true)
  })

  it('revoking a connected device drops its session within 10 s, without restart', async () => {
    const device = await connectClient(running.url, fleet, fleet.device('live-revoke-001'), 'live-revoke-001')
    const closed = new Promise<number>((resolve) => device.once('close', () => resolve(Date.now())))
    const revokedAt = Date.now()
    await fleet.pki.revoke('live-revoke-001')
    const closedAt = await closed
    expect(closedAt - revokedAt).toBeLessThan(10_000)
    await running.waitForEvent((e) => e.type === 'session-revoked' && e.deviceId === 'live-revoke-001')
    // …and the next handshake is refused.
    const result = await mosquittoPub(running.port, deviceTls('live-revoke-001'), 'live-revoke-001', TELEMETRY('live-revoke-001'), 'x')
    expect(result.code).not.toBe(0)
    await running.waitForEvent(isRejection('certificate revoked', { deviceId: 'live-revoke-001' }))
  })
})
