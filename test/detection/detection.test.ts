import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { loadScenario, runSimulation } from '../../agent-sim/index.ts'
import { createCollectorService } from '../../app/collector-service.ts'
import { loadConfig } from '../../app/config.ts'
import { createLogger } from '../../shared/logger.ts'
import { useFleetWithBroker, waitFor } from '../helpers/broker.ts'

const setup = useFleetWithBroker()

describe('detection in the collector (real broker, simulator and shipped policies)', () => {
  it('raises an alert for each injected incident and none for the clean devices', async () => {
    const config = loadConfig({ env: {}, flags: { dataDir: setup.fleet.dataDir } })
    const service = createCollectorService(config, setup.broker.url, createLogger({ level: 'silent' }))
    await service.start()
    const scenario = join(setup.fleet.dataDir, 'detect.yaml')
    writeFileSync(scenario, [
      'name: detections',
      'incidents:',
      '  - { policy: firmware-outdated, fw: 2.9.0, select: { ids: [flood-00001] } }',
      '  - { policy: firmware-vulnerable, fw: 5.2.2, select: { ids: [energy-00001] } }',
      '  - { policy: firmware-downgrade, fw: 1.7.0, select: { ids: [housing-00001] }, at: 1s }',
      '  - { policy: value-implausible, mode: jump, select: { ids: [flood-00002] }, at: 1s }',
      '  - { policy: value-implausible, mode: backwards, select: { ids: [energy-00002] }, at: 1s }',
      '  - { policy: clock-skew, offset: 20m, select: { ids: [energy-00003] }, at: 1s }',
      '  - { policy: replay, count: 1, select: { ids: [housing-00002] }, at: 1s }',
      '  - { policy: payload-invalid, count: 1, select: { ids: [housing-00003] }, at: 1s }',
      '  - { policy: payload-invalid, mode: malformed-packet, count: 1, select: { ids: [energy-00004] }, at: 1s }',
      '  - { policy: acl-violation, mode: wildcard-subscribe, select: { ids: [flood-00003] }, at: 1s }',
      '  - { policy: cert-rejected, mode: foreign-ca, attempts: 1, select: { ids: [flood-00004] }, at: 500ms }',
      '  - { policy: cert-expiry, expiresInDays: 3, select: { ids: [housing-00004] } }',
    ].join('\n'))
    try {
      await runSimulation({ dataDir: setup.fleet.dataDir, brokerUrl: setup.broker.url, devices: 18, intervalMs: 250, durationMs: 4_000, seed: 9, mix: { flood: 6, energy: 6, housing: 6 }, scenario: loadScenario(scenario) })
      service.refreshInventory() // the minute timer's work, now: the simulator issued housing-00004's short-lived certificate after start
      await waitFor(async () => (await service.detection.alerts.list()).length >= 12, 10_000, 'alerts')
      const open = async (policy: string) => (await service.detection.alerts.list()).filter((a) => a.policy === policy).map((a) => a.deviceId)
      expect((await open('firmware-outdated'))).toEqual(['flood-00001'])
      expect((await open('firmware-vulnerable'))).toEqual(['energy-00001'])
      expect((await open('firmware-downgrade'))).toEqual(['housing-00001'])
      expect((await open('value-implausible')).sort()).toEqual(['energy-00002', 'flood-00002'])
      expect((await open('clock-skew'))).toEqual(['energy-00003'])
      expect((await open('replay'))).toEqual(['housing-00002'])
      expect((await open('payload-invalid')).sort()).toEqual(['energy-00004', 'housing-00003'])
      expect((await open('acl-violation'))).toEqual(['flood-00003'])
      expect((await open('cert-rejected'))).toEqual(['address:127.0.0.1'])
      expect((await open('cert-expiry'))).toEqual(['housing-00004'])
      const injected = new Set(['flood-00001', 'energy-00001', 'housing-00001', 'flood-00002', 'energy-00002', 'energy-00003', 'housing-00002', 'housing-00003', 'energy-00004', 'flood-00003', 'address:127.0.0.1', 'housing-00004'])
      expect((await service.detection.alerts.list()).filter((a) => !injected.has(a.deviceId))).toEqual([])
      const alert = (await service.detection.alerts.list({ policy: 'acl-violation' }))[0]!
      expect(alert).toMatchObject({ status: 'open', severity: 'high', stride: 'Elevation of privilege', evidence: { topic: 'places/#' } })
      // The broker's reading of the malformed packet, as the alert's evidence.
      const malformed = (await service.detection.alerts.list({ policy: 'payload-invalid', deviceId: 'energy-00004' }))[0]!
      expect(malformed.evidence).toMatchObject({ code: 'MALFORMED_PACKET', reason: 'malformed MQTT packet (Packet must not have both QoS bits set to 1); connection closed' })
    } finally {
      await service.stop()
    }
  })
})

describe('policy reload', () => {
  it('reloads edited policy files, and keeps the policies in force when a file is broken', async () => {
    const { cpSync, mkdtempSync, rmSync } = await import('node:fs')
    const { tmpdir } = await import('node:os')
    const { Detection, SHIPPED_POLICIES_DIR } = await import('../../detection/detection.ts')
    const dir = mkdtempSync(join(tmpdir(), 'placeguard-reload-'))
    cpSync(SHIPPED_POLICIES_DIR, dir, { recursive: true, filter: (source) => !source.endsWith('.ts') && !source.includes('/rules') })
    const logs: string[] = []
    const logger = createLogger({ level: 'info', destination: { write: (line: string) => { logs.push(line) } } as never })
    const detection = new Detection({ dataDir: dir, policiesDir: dir, logger, store: () => {} })
    // Through Detection's own input: a first reading, `offsetMs` ahead of its arrival, from a device not heard before
    // (the same message twice would be set aside as a redelivery and judged by no policy); the policies of its alerts.
    let devices = 0
    const skew = async (offsetMs: number) => {
      const device = `f-${++devices}`
      detection.onTelemetry({ measurement: 'flood', tags: { site: 'a', device }, fields: { seq: 1, fw: '3.2.1' }, timestampMs: offsetMs }, 0)
      return (await detection.alerts.list({ deviceId: device })).map((a) => a.policy)
    }
    try {
      expect(await skew(10 * 60_000)).toEqual(['clock-skew'])
      writeFileSync(join(dir, 'telemetry.yaml'), 'policies:\n  - id: clock-skew\n    severity: low\n    params: { maxSkew: 1h }\n')
      expect(detection.reloadPolicies()).toBe(true)
      expect(await skew(10 * 60_000)).toEqual([])
      writeFileSync(join(dir, 'hostile.yaml'), 'policies:\n  - id: clock-skew\n    severity: low\n    params: { maxSkew: "1ms; rm -rf /" }\n')
      expect(detection.reloadPolicies()).toBe(false)
      expect(logs.join('')).toMatch(/hostile\.yaml:4: policies\.0\.params\.maxSkew: .* is not a duration.*the policies in force stay in force/)
      expect(await skew(10 * 60_000)).toEqual([]) // still the 1 h policy
      // What the API shows is the set in force, not the broken files on disk.
      expect(detection.policySet.policies.find(({ policy }) => policy.id === 'clock-skew')!.policy.params).toEqual({ maxSkew: 3_600_000 })
    } finally {
      await detection.stop()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('automated response: quarantine', () => {
  it('quarantines the device of a new alert when its policy says so, records it on the alert, and an operator can lift it', async () => {
    const { cpSync, mkdtempSync, rmSync } = await import('node:fs')
    const { tmpdir } = await import('node:os')
    const { SHIPPED_POLICIES_DIR } = await import('../../detection/detection.ts')
    const { connectClient } = await import('../helpers/broker.ts')
    const { mosquittoPub } = await import('../helpers/mosquitto-clients.ts')
    const policiesDir = mkdtempSync(join(tmpdir(), 'placeguard-response-'))
    cpSync(SHIPPED_POLICIES_DIR, policiesDir, { recursive: true, filter: (source) => !source.endsWith('.ts') && !source.includes('/rules') })
    writeFileSync(join(policiesDir, 'behaviour.yaml'), [
      'policies:',
      '  - { id: acl-violation, severity: high, response: { quarantine: { duration: 1h } } }',
      '  - { id: identity-clone, severity: critical }',
    ].join('\n'))
    await setup.fleet.pki.issueMany([{ deviceId: 'flood-q1', kind: 'flood', site: 'riverside' }, { deviceId: 'flood-q2', kind: 'flood', site: 'riverside' }])
    const config = loadConfig({ env: { PLACEGUARD_POLICIES_DIR: policiesDir }, flags: { dataDir: setup.fleet.dataDir } })
    const service = createCollectorService(config, setup.broker.url, createLogger({ level: 'silent' }))
    await service.start()
    const tls = (id: string) => ({ cafile: setup.fleet.paths.caCert, ...setup.fleet.device(id) })
    try {
      const device = await connectClient(setup.broker.url, setup.fleet, setup.fleet.device('flood-q1'), 'flood-q1')
      device.publish('places/riverside/flood/flood-q9/telemetry', '{}', { qos: 1 })
      await waitFor(async () => (await service.detection.alerts.list({ policy: 'acl-violation', deviceId: 'flood-q1' }))[0]?.response?.status === 'active', 10_000, 'quarantine confirmed on the alert')
      device.end(true)
      const alert = (await service.detection.alerts.list({ policy: 'acl-violation', deviceId: 'flood-q1' }))[0]!
      const untilMs = Date.parse(alert.response!.until!)
      expect(untilMs - Date.now()).toBeGreaterThan(59 * 60_000)
      expect(setup.broker.events).toContainEqual(expect.objectContaining({ type: 'quarantined', deviceId: 'flood-q1', details: expect.objectContaining({ alertId: alert.id, policy: 'acl-violation', by: 'policy:acl-violation' }) }))
      expect((await mosquittoPub(setup.broker.port, tls('flood-q1'), 'flood-q1', 'places/riverside/flood/flood-q1/telemetry', '{}')).code).not.toBe(0)
      // One alert, one quarantine.
      expect(service.detection.counters.quarantinesRequested).toBe(1)

      await service.detection.liftQuarantine('flood-q1', 'operator alice')
      await waitFor(async () => (await service.detection.alerts.get(alert.id))?.response?.status === 'lifted', 10_000, 'lift recorded')
      expect((await service.detection.alerts.get(alert.id))!.response).toMatchObject({ detail: 'lifted by operator alice' })
      expect((await mosquittoPub(setup.broker.port, tls('flood-q1'), 'flood-q1', 'places/riverside/flood/flood-q1/telemetry', '{}')).code).toBe(0)
    } finally {
      await service.stop()
      rmSync(policiesDir, { recursive: true, force: true })
    }
  })
})

describe('a quarantined device', () => {
  it('is silent because PlaceGuard silenced it: no device-silent alert while its quarantine lasts', async () => {
    const { mkdtempSync, rmSync } = await import('node:fs')
    const { tmpdir } = await import('node:os')
    const { Detection } = await import('../../detection/detection.ts')
    const dir = mkdtempSync(join(tmpdir(), 'placeguard-quiet-'))
    const detection = new Detection({ dataDir: dir, logger: createLogger({ level: 'silent' }), store: () => {}, tickMs: 50 })
    const start = Date.now() - 120_000
    for (const deviceId of ['flood-a', 'flood-b']) {
      for (let seq = 0; seq < 10; seq++) {
        detection.onTelemetry({ measurement: 'flood', tags: { site: 'riverside', device: deviceId }, fields: { seq, fw: '3.2.1', level_cm: 80, battery_v: 3.6 }, timestampMs: start + seq * 2_000 }, start + seq * 2_000)
      }
    }
    detection.onSecurityEvent({ type: 'quarantined', at: new Date().toISOString(), deviceId: 'flood-a', reason: 'quarantined', details: { until: new Date(Date.now() + 3_600_000).toISOString(), by: 'alice' } })
    detection.start()
    try {
      await waitFor(async () => (await detection.alerts.list({ policy: 'device-silent' })).length > 0, 5_000, 'the unquarantined device to be found silent')
      await new Promise((resolve) => setTimeout(resolve, 200)) // a few more ticks
      expect((await detection.alerts.list({ policy: 'device-silent' })).map((a) => [a.deviceId, a.site, a.kind])).toEqual([['flood-b', 'riverside', 'flood']])
      expect(detection.counters.quieted).toBeGreaterThan(0)
    } finally {
      await detection.stop()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('cert-expiry and LoRaWAN devices (issue 16)', () => {
  it('judges the certificates of pki list and passes over devices registered behind an integration', async () => {
    const { mkdtempSync, rmSync } = await import('node:fs')
    const { tmpdir } = await import('node:os')
    const { Detection } = await import('../../detection/detection.ts')
    const dir = mkdtempSync(join(tmpdir(), 'placeguard-lorawan-expiry-'))
    const detection = new Detection({ dataDir: dir, logger: createLogger({ level: 'silent' }), store: () => {} })
    const now = Date.now()
    try {
      detection.checkCertificates([
        {
          identity: 'certificate', serial: '0a', deviceId: 'flood-1', role: 'device', kind: 'flood', site: 'riverside',
          notBefore: new Date(now - 86_400_000).toISOString(), notAfter: new Date(now + 2 * 86_400_000).toISOString(), keyAlgorithm: 'ecdsa-p256',
          status: 'active', effectiveStatus: 'active', issuedAt: new Date(now - 86_400_000).toISOString(), revokedAt: null,
          fingerprint: null, spkiSha256: null, certificatePath: null, network: null,
        },
        {
          identity: 'lorawan', deviceId: 'gauge-1', role: 'device', kind: 'flood', site: 'riverside', devEui: '0004a30b001c0530',
          integrationId: 'cs-north', network: 'chirpstack', addedAt: new Date(now).toISOString(), status: 'active', effectiveStatus: 'active',
        },
      ])
      await waitFor(async () => (await detection.alerts.list()).length > 0, 5_000, 'the cert-expiry alert')
      expect((await detection.alerts.list()).map((a) => [a.policy, a.deviceId])).toEqual([['cert-expiry', 'flood-1']])
    } finally {
      await detection.stop()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
