/**
 * The MQTT collector reading integration events from a real broker, where
 * the broker re-addresses them (`$SYS/placeguard/lorawan/<integration>/…`,
 * published here by the broker itself, as it does for an integration's
 * accepted publish): a registered device's uplink lands in the spool as
 * its telemetry, every event reaches the `lorawan` listeners, hostile
 * payloads become payload-invalid events and the collector reads on, and
 * every message is acknowledged.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { aedesOf } from '../../broker/broker.ts'
import { Collector } from '../../collector/collector.ts'
import { lorawanRegistryOf } from '../../collector/lorawan.ts'
import { Spool } from '../../collector/spool.ts'
import { createLogger } from '../../shared/logger.ts'
import type { LorawanObservation } from '../../shared/lorawan.ts'
import { type RunningBroker, startBroker, waitFor } from '../helpers/broker.ts'
import { createTestFleet, type TestFleet } from '../helpers/fleet.ts'
import { chirpstackJoin, chirpstackTopic, chirpstackUp, json, ttsTopic, ttsUp } from '../helpers/lorawan-uplinks.ts'

let fleet: TestFleet
let broker: RunningBroker
let workDir: string

beforeAll(async () => {
  fleet = await createTestFleet([])
  broker = await startBroker(fleet, { publishRatePerSec: 0 })
  workDir = mkdtempSync(join(tmpdir(), 'pg-lorawan-collector-'))
})

afterAll(async () => {
  await broker?.close()
  fleet?.cleanup()
  rmSync(workDir, { recursive: true, force: true })
})

/** What the broker does with an integration's accepted publish: the same bytes, on the re-addressed topic, QoS 1. */
function brokerPublishes (topic: string, payload: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    aedesOf(broker.broker).publish({ cmd: 'publish', topic, payload, qos: 1, retain: false, dup: false, messageId: 0 } as never, (error?: Error) => error ? reject(error) : resolve())
  })
}

it('stores a registered device\'s uplinks of both networks, refuses hostile ones by field, and reads on', async () => {
  const spool = new Spool({ path: join(workDir, 'spool.db'), maxBytes: 10_000_000 })
  const collector = new Collector({
    brokerUrl: broker.url, clientId: 'collector-lorawan', spool, logger: createLogger({ level: 'silent' }),
    tls: { caCert: fleet.paths.caCert, cert: fleet.paths.collectorCert, key: fleet.paths.collectorKey },
    lorawanRegistry: lorawanRegistryOf([
      { deviceId: 'flood-lw-1', kind: 'flood', site: 'riverside', devEui: '0101010101010101', integrationId: 'chirpstack-council' },
      { deviceId: 'housing-lw-1', kind: 'housing', site: 'old-town', devEui: '70b3d57ed005a1b2', integrationId: 'tts-council' },
    ]),
  })
  const observations: LorawanObservation[] = []
  collector.on('lorawan', (observation) => observations.push(observation))
  await collector.start()
  try {
    const flood = chirpstackTopic('chirpstack-council', '0101010101010101')
    await brokerPublishes(flood, json(chirpstackUp({ devEui: '0101010101010101', fCnt: 10, decoded: { level_cm: 40, battery_v: 3.6 } })))
    await brokerPublishes(chirpstackTopic('chirpstack-council', '0101010101010101', 'join'), json(chirpstackJoin('0101010101010101')))
    // Hostile or broken: not JSON, 65 gateways, an RSSI that is a string, far too large; then a spoofed and an unknown device.
    await brokerPublishes(flood, Buffer.from('{"deviceInfo":'))
    await brokerPublishes(flood, json(chirpstackUp({ devEui: '0101010101010101', fCnt: 11, decoded: { level_cm: 40, battery_v: 3.6 }, gateways: Array.from({ length: 65 }, (_, i) => ({ id: `gw-${i}`, rssi: -90, snr: 5 })) })))
    await brokerPublishes(flood, json({ ...chirpstackUp({ devEui: '0101010101010101', fCnt: 12 }), rxInfo: [{ gatewayId: 'gw-1', rssi: 'NaN' }] }))
    await brokerPublishes(flood, Buffer.alloc(20_000, 0x20))
    await brokerPublishes(chirpstackTopic('rogue-network', '0101010101010101'), json(chirpstackUp({ devEui: '0101010101010101', fCnt: 13, decoded: { level_cm: 999, battery_v: 3.6 } })))
    await brokerPublishes(chirpstackTopic('chirpstack-council', 'a0a0a0a0a0a0a0a0'), json(chirpstackUp({ devEui: 'a0a0a0a0a0a0a0a0', fCnt: 1, decoded: { level_cm: 1, battery_v: 3 } })))
    await brokerPublishes(ttsTopic('tts-council', 'block-c-flat-12'), json(ttsUp({ devEui: '70B3D57ED005A1B2', fCnt: 300, decoded: { temp_c: 19.5, humidity_pct: 61, co2_ppm: 812 } })))
    await waitFor(() => collector.metrics.received >= 9, 10_000, 'the nine events at the collector')
    await waitFor(() => collector.pendingMessages === 0, 10_000, 'every event committed')

    const points = spool.peek(100)?.points ?? []
    const telemetry = points.filter((point) => point.measurement !== 'security_event')
    expect(telemetry.map((point) => [point.tags.device, point.fields.seq])).toEqual([['flood-lw-1', 10], ['housing-lw-1', 300]])
    expect(telemetry[1]).toMatchObject({ tags: { site: 'old-town' }, fields: { rssi: -88, snr: 9.25, gateways: 1, gateway: 'council-gw-3' }, timestampMs: Date.parse('2026-11-30T08:15:03.041Z') })
    const invalid = points.filter((point) => point.tags.type === 'payload-invalid')
    expect(invalid.map((point) => [point.tags.type, point.tags.device])).toEqual(Array(4).fill(['payload-invalid', 'chirpstack-council']))
    expect(invalid.map((point) => String(point.fields.reason))).toEqual([
      expect.stringContaining('payload: not JSON'), expect.stringContaining('rxInfo: '), expect.stringContaining('rxInfo.0.rssi: '), expect.stringContaining('payload: 20000 bytes exceed'),
    ])
    // Every event that parsed is an observation: the registered ones with their device, the spoofed one naming its owner.
    expect(observations.map((o) => [o.message.event, o.device?.deviceId ?? null, o.registeredTo ?? null])).toEqual([
      ['up', 'flood-lw-1', null], ['join', 'flood-lw-1', null], ['up', null, 'chirpstack-council'], ['up', null, null], ['up', 'housing-lw-1', null],
    ])
    expect(collector.connected).toBe(true)
    expect(collector.metrics).toMatchObject({ received: 9, lorawanEvents: 5, telemetryStored: 2, rejected: 4 })
  } finally {
    await collector.stop()
    spool.close()
  }
})
