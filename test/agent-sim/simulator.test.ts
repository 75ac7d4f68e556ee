import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { loadScenario, runSimulation } from '../../agent-sim/index.ts'
import { useFleetWithBroker, waitFor } from '../helpers/broker.ts'
import { mosquittoSub, type Subscriber } from '../helpers/mosquitto-clients.ts'

const setup = useFleetWithBroker()

function collector (topics: string[]): Subscriber {
  return mosquittoSub(setup.broker.port, { cafile: setup.fleet.paths.caCert, cert: setup.fleet.paths.collectorCert, key: setup.fleet.paths.collectorKey }, 'collector', topics)
}

const telemetryLines = (lines: string[]) => lines.filter((line) => /^places\/[^ ]+\/telemetry /.test(line))

describe('placeguard sim against the real broker', () => {
  it('reports exactly the messages an independent subscriber receives, with valid payloads per kind', async () => {
    const sub = collector(['places/#'])
    try {
      await sub.ready
      const summary = await runSimulation({ dataDir: setup.fleet.dataDir, brokerUrl: setup.broker.url, devices: 24, intervalMs: 300, durationMs: 3_000, seed: 1 })
      expect(summary).toMatchObject({ devices: 24, connected: 24, failed: 0, issued: 24, reused: 0 })
      expect(summary.sent).toBe(summary.acked)
      expect(summary.acked).toBeGreaterThan(24 * 5)
      expect(summary.publishAckP99Ms).toBeGreaterThan(0)
      await waitFor(() => telemetryLines(sub.lines).length >= summary.acked, 5_000, 'the subscriber to catch up')
      const lines = telemetryLines(sub.lines)
      expect(lines).toHaveLength(summary.acked)
      const seqs = new Map<string, number[]>()
      for (const line of lines) {
        const [topic, json] = [line.slice(0, line.indexOf(' ')), line.slice(line.indexOf(' ') + 1)]
        const [, site, kind, deviceId] = topic.split('/')
        const payload = JSON.parse(json) as Record<string, unknown>
        expect(typeof payload.ts).toBe('number')
        expect(payload.fw).toMatch(/^\d+\.\d+\.\d+$/)
        const fields = { flood: ['level_cm', 'battery_v'], energy: ['power_kw', 'voltage_v', 'energy_kwh'], housing: ['temp_c', 'humidity_pct', 'co2_ppm'] }[kind as 'flood']
        for (const field of fields) expect(typeof payload[field], `${field} of ${deviceId}`).toBe('number')
        expect(site).toMatch(/^[a-z-]+$/)
        seqs.set(deviceId!, [...(seqs.get(deviceId!) ?? []), payload.seq as number])
      }
      // Per device, seq counts 0, 1, 2, … with no gap and no repeat.
      for (const [deviceId, list] of seqs) expect(list, deviceId).toEqual(list.map((_, i) => i))
      expect(seqs.size).toBe(24)
    } finally {
      sub.stop()
    }
  })

  it('reuses the identities it issued on a rerun', async () => {
    const summary = await runSimulation({ dataDir: setup.fleet.dataDir, brokerUrl: setup.broker.url, devices: 24, intervalMs: 1_000, durationMs: 500, seed: 1 })
    expect(summary).toMatchObject({ issued: 0, reused: 24, connected: 24 })
  })

  it('puts every injected incident on the wire, and writes the ground truth', async () => {
    const file = join(setup.fleet.dataDir, 'wire.yaml')
    writeFileSync(file, [
      'name: wire check',
      'incidents:',
      '  - { policy: cert-rejected, mode: expired, select: { ids: [flood-00000] } }',
      '  - { policy: cert-rejected, mode: foreign-ca, attempts: 1, select: { ids: [flood-00001] }, at: 200ms }',
      '  - { policy: cert-rejected, mode: self-signed, attempts: 1, select: { ids: [flood-00002] }, at: 200ms }',
      '  - { policy: cert-revoked-attempt, select: { ids: [flood-00003] }, at: 300ms }',
      '  - { policy: acl-violation, mode: foreign-publish, select: { ids: [energy-00000] }, at: 400ms }',
      '  - { policy: acl-violation, mode: wildcard-subscribe, select: { ids: [energy-00001] }, at: 400ms }',
      '  - { policy: identity-clone, duration: 2s, select: { ids: [housing-00000] }, at: 300ms }',
      '  - { policy: connection-flapping, count: 3, every: 600ms, select: { ids: [housing-00001] }, at: 300ms }',
      '  - { policy: payload-invalid, mode: not-json, count: 1, select: { ids: [housing-00002] }, at: 200ms }',
      '  - { policy: value-implausible, mode: backwards, select: { ids: [energy-00002] }, at: 200ms }',
      '  - { policy: clock-skew, offset: 30m, select: { ids: [energy-00003] }, at: 200ms }',
      '  - { policy: replay, count: 1, select: { ids: [housing-00003] }, at: 200ms }',
      '  - { policy: firmware-outdated, fw: 0.9.0, select: { ids: [flood-00004] } }',
      '  - { policy: firmware-downgrade, fw: 0.1.0, select: { ids: [housing-00004] } }',
      '  - { policy: rate-burst, ratePerSec: 30, duration: 2s, select: { ids: [energy-00004] }, at: 200ms }',
      '  - { policy: device-silent, select: { ids: [flood-00005] }, at: 100ms }',
      '  - { policy: cert-expiry, expiresInDays: 3, select: { ids: [energy-00005] } }',
    ].join('\n'))
    const truthFile = join(setup.fleet.dataDir, 'truth.jsonl')
    const eventsBefore = setup.broker.events.length
    const sub = collector(['places/#'])
    try {
      await sub.ready
      const summary = await runSimulation({
        dataDir: setup.fleet.dataDir, brokerUrl: setup.broker.url, devices: 30, intervalMs: 250, durationMs: 4_000, seed: 2,
        mix: { flood: 10, energy: 10, housing: 10 }, scenario: loadScenario(file), truthFile,
      })
      const events = setup.broker.events.slice(eventsBefore)
      const of = (type: string, deviceId: string) => events.filter((e) => e.type === type && (e.deviceId === deviceId || e.claimedId === deviceId))

      expect(summary.injected).toBe(17)
      expect(summary.connected).toBe(29) // flood-00000 holds only an expired certificate
      expect(of('tls-rejected', 'flood-00000')[0]).toMatchObject({ reason: 'certificate expired', deviceId: 'flood-00000' })
      expect(of('tls-rejected', 'flood-00001')[0]).toMatchObject({ reason: 'certificate from an unknown CA', claimedId: 'flood-00001' })
      expect(of('tls-rejected', 'flood-00002')[0]).toMatchObject({ reason: 'self-signed certificate', claimedId: 'flood-00002' })
      expect(of('session-revoked', 'flood-00003')).toHaveLength(1)
      await waitFor(() => setup.broker.events.some((e) => e.type === 'tls-rejected' && e.deviceId === 'flood-00003' && e.reason === 'certificate revoked'), 5_000, 'a refused reconnect of the revoked device')
      expect(of('acl-denied', 'energy-00000')[0]).toMatchObject({ reason: 'publish outside own topic' })
      expect(of('acl-denied', 'energy-00001')[0]).toMatchObject({ reason: 'subscribe outside own topic', topic: 'places/#' })
      expect(of('duplicate-identity', 'housing-00000').length).toBeGreaterThanOrEqual(1)
      expect(of('connect', 'housing-00001').length).toBeGreaterThanOrEqual(3)
      expect(of('rate-limited', 'energy-00004')).toHaveLength(1)

      const payloadsOf = (deviceId: string) => telemetryLines(sub.lines).filter((l) => l.includes(`/${deviceId}/telemetry `)).map((l) => l.slice(l.indexOf(' ') + 1))
      expect(payloadsOf('housing-00002').some((p) => { try { JSON.parse(p); return false } catch { return true } })).toBe(true)
      const meter = payloadsOf('energy-00002').map((p) => (JSON.parse(p) as { energy_kwh: number }).energy_kwh)
      expect(meter.some((value, i) => i > 0 && value < meter[i - 1]!)).toBe(true)
      const skewed = payloadsOf('energy-00003').map((p) => JSON.parse(p) as { ts: number })
      expect(skewed.some((p) => p.ts - Date.now() > 20 * 60_000)).toBe(true)
      const replayed = payloadsOf('housing-00003').map((p) => (JSON.parse(p) as { seq: number }).seq)
      expect(new Set(replayed).size).toBeLessThan(replayed.length)
      expect(payloadsOf('flood-00004').every((p) => (JSON.parse(p) as { fw: string }).fw === '0.9.0')).toBe(true)
      // A downgrade at the start still comes after a message on the firmware the device ran before.
      const versions = payloadsOf('housing-00004').map((p) => (JSON.parse(p) as { fw: string }).fw)
      expect(versions[0]).not.toBe('0.1.0')
      expect(versions.at(-1)).toBe('0.1.0')
      // At most the one message it may have sent before its silence at 100 ms (a QoS 1 copy of it is the same message).
      expect(new Set(payloadsOf('flood-00005')).size).toBeLessThanOrEqual(1)
      expect(setup.fleet.pki.list().find((e) => e.deviceId === 'energy-00005' && e.status === 'active')!.notAfter! < new Date(Date.now() + 4 * 86_400_000).toISOString()).toBe(true)

      const truth = readFileSync(truthFile, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as { deviceId: string, policy: string, startedAt: string })
      expect(truth.map((t) => `${t.deviceId} ${t.policy}`).sort()).toEqual(loadScenario(file).incidents.map((i) => `${i.select.ids![0]} ${i.policy}`).sort())
      for (const record of truth) expect(Date.parse(record.startedAt)).not.toBeNaN()
    } finally {
      sub.stop()
    }
  })
})
