import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { QUARANTINE_CONTROL_TOPIC } from '../../shared/topics.ts'
import { collectorFiles, connectClient, type RunningBroker, startBroker, waitFor } from '../helpers/broker.ts'
import { createTestFleet, type TestFleet } from '../helpers/fleet.ts'
import { mosquittoPub } from '../helpers/mosquitto-clients.ts'

const DEVICES = ['flood-001', 'flood-002', 'flood-003', 'flood-004'].map((deviceId) => ({ deviceId, kind: 'flood' as const, site: 'riverside' }))
const telemetry = (id: string) => `places/riverside/flood/${id}/telemetry`

let fleet: TestFleet
let running: RunningBroker
let quarantineFile: string

beforeAll(async () => {
  fleet = await createTestFleet(DEVICES)
  quarantineFile = join(fleet.dataDir, 'quarantine.json')
  running = await startBroker(fleet, {}, { quarantineFile })
})
afterAll(async () => {
  await running.close()
  fleet.cleanup()
})

const tlsOf = (id: string) => ({ cafile: fleet.paths.caCert, ...fleet.device(id) })

async function command (payload: object | string): Promise<void> {
  const collector = await connectClient(running.url, fleet, collectorFiles(fleet), 'collector-test')
  try {
    await collector.publishAsync(QUARANTINE_CONTROL_TOPIC, typeof payload === 'string' ? payload : JSON.stringify(payload), { qos: 1 })
  } finally {
    await collector.endAsync()
  }
}

describe('quarantine at the broker', () => {
  it('drops the live session, refuses CONNECT with "not authorized", and lets the device back after a lift', async () => {
    const device = await connectClient(running.url, fleet, fleet.device('flood-001'), 'flood-001')
    const closed = new Promise<void>((resolve) => device.once('close', () => resolve()))
    await command({ action: 'quarantine', deviceId: 'flood-001', durationMs: 3_600_000, reason: 'acl-violation: publish outside own topic', by: 'policy:acl-violation', alertId: 'alert-1', policy: 'acl-violation' })
    await closed
    device.end(true)
    const event = await running.waitForEvent((e) => e.type === 'quarantined' && e.deviceId === 'flood-001')
    expect(event.details).toMatchObject({ by: 'policy:acl-violation', alertId: 'alert-1', policy: 'acl-violation', sessionsDropped: 1 })
    expect(event.reason).toMatch(/^quarantined until .*: acl-violation: publish outside own topic$/)

    // mosquitto_pub: CONNACK 5 is "not authorised" (exit code 5).
    const refused = await mosquittoPub(running.port, tlsOf('flood-001'), 'flood-001', telemetry('flood-001'), '{}')
    expect(refused.stderr).toMatch(/not authori[sz]ed/i)
    expect(refused.code).not.toBe(0)
    const failed = await running.waitForEvent((e) => e.type === 'auth-failed' && e.deviceId === 'flood-001')
    expect(failed).toMatchObject({ code: 'QUARANTINED' })
    // A device that keeps retrying is refused every time but reported once a minute.
    expect((await mosquittoPub(running.port, tlsOf('flood-001'), 'flood-001', telemetry('flood-001'), '{}')).code).not.toBe(0)
    expect(running.events.filter((e) => e.type === 'auth-failed' && e.deviceId === 'flood-001')).toHaveLength(1)
    // Other devices are untouched.
    expect((await mosquittoPub(running.port, tlsOf('flood-002'), 'flood-002', telemetry('flood-002'), '{}')).code).toBe(0)

    await command({ action: 'lift', deviceId: 'flood-001', by: 'alice' })
    const lifted = await running.waitForEvent((e) => e.type === 'quarantine-lifted' && e.deviceId === 'flood-001')
    expect(lifted.details).toMatchObject({ by: 'alice', alertId: 'alert-1' })
    expect((await mosquittoPub(running.port, tlsOf('flood-001'), 'flood-001', telemetry('flood-001'), '{}')).code).toBe(0)
  })

  it('ends by itself when its time is up', async () => {
    await command({ action: 'quarantine', deviceId: 'flood-002', durationMs: 1_500, reason: 'test', by: 'alice' })
    expect((await mosquittoPub(running.port, tlsOf('flood-002'), 'flood-002', telemetry('flood-002'), '{}')).code).not.toBe(0)
    const ended = await running.waitForEvent((e) => e.type === 'quarantine-lifted' && e.deviceId === 'flood-002')
    expect(ended).toMatchObject({ reason: 'quarantine period ended', details: { by: 'broker' } })
    expect((await mosquittoPub(running.port, tlsOf('flood-002'), 'flood-002', telemetry('flood-002'), '{}')).code).toBe(0)
  })

  it('survives a broker restart', async () => {
    await command({ action: 'quarantine', deviceId: 'flood-003', durationMs: 3_600_000, reason: 'kept across restart', by: 'alice' })
    await running.waitForEvent((e) => e.type === 'quarantined' && e.deviceId === 'flood-003')
    expect(JSON.parse(readFileSync(quarantineFile, 'utf8'))).toEqual([expect.objectContaining({ deviceId: 'flood-003', reason: 'kept across restart' })])
    const second = await startBroker(fleet, {}, { quarantineFile })
    try {
      expect(second.broker.quarantined().map((q) => q.deviceId)).toEqual(['flood-003'])
      expect((await mosquittoPub(second.port, tlsOf('flood-003'), 'flood-003', telemetry('flood-003'), '{}')).code).not.toBe(0)
      expect(second.broker.liftQuarantine('flood-003', 'alice')).toBeDefined()
      expect((await mosquittoPub(second.port, tlsOf('flood-003'), 'flood-003', telemetry('flood-003'), '{}')).code).toBe(0)
    } finally {
      await second.close()
    }
  })

  it('refuses malformed commands, and a device cannot send commands at all', async () => {
    await command('{"action":"quarantine","deviceId":"flood-004","durationMs":-1,"reason":"x","by":"eve"}')
    await command('not json')
    await waitFor(() => running.logs.filter((line) => line.includes('quarantine command refused')).length >= 2, 5_000, 'refusals logged')
    expect(running.logs.join('')).toMatch(/control message: durationMs: /)
    expect(running.broker.quarantined().map((q) => q.deviceId)).not.toContain('flood-004')

    const result = await mosquittoPub(running.port, tlsOf('flood-004'), 'flood-004', QUARANTINE_CONTROL_TOPIC, JSON.stringify({ action: 'quarantine', deviceId: 'flood-002', durationMs: 60_000, reason: 'x', by: 'eve' }))
    expect(result.code).not.toBe(0)
    await running.waitForEvent((e) => e.type === 'acl-denied' && e.deviceId === 'flood-004' && e.topic === QUARANTINE_CONTROL_TOPIC)
    expect(running.broker.quarantined().map((q) => q.deviceId)).not.toContain('flood-002')
  })
})
