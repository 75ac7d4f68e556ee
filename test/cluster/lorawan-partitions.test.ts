/**
 * LoRaWAN devices in cluster mode (app/cluster-ingest.ts) on a real
 * redis-server: an integration's uplinks are appended under the
 * integration's id, so its devices' messages are read from the
 * integration's partition, and their detection state and alert fences go
 * with that partition (`partitionKeyOf`), not with the one their own id
 * would hash to.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { ClusterIngest } from '../../app/cluster-ingest.ts'
import { lorawanDirectory } from '../../app/collector-service.ts'
import { clusterKeys, connectRedis, partitionOf, type Redis, StreamHandoff } from '../../cluster/index.ts'
import { EmbeddedStore } from '../../collector/embedded-store.ts'
import { createLogger } from '../../shared/logger.ts'
import type { LorawanObservation } from '../../shared/lorawan.ts'
import { waitFor } from '../helpers/broker.ts'
import { chirpstackTopic, chirpstackUp, json } from '../helpers/lorawan-uplinks.ts'
import { startRedis, type RunningRedis } from '../helpers/redis-server.ts'

const logger = createLogger({ level: 'silent' })
const PARTITIONS = 16
const INTEGRATION = 'chirpstack-council'
let server: RunningRedis
let redis: Redis
let dir: string

beforeAll(async () => {
  server = await startRedis()
  redis = connectRedis({ url: server.url, name: 'test', logger })
  dir = mkdtempSync(join(tmpdir(), 'pg-lorawan-partitions-'))
})
afterAll(async () => {
  redis?.disconnect()
  await server?.stop()
  rmSync(dir, { recursive: true, force: true })
})

it('reads an integration\'s uplinks from its partition, and keeps its devices\' state and fences there', async () => {
  // The test means something only where the two hash apart.
  expect(partitionOf('flood-lw-1', PARTITIONS)).not.toBe(partitionOf(INTEGRATION, PARTITIONS))
  const directory = lorawanDirectory()
  directory.update([{ deviceId: 'flood-lw-1', kind: 'flood', site: 'riverside', devEui: '0101010101010101', integrationId: INTEGRATION }])
  const store = new EmbeddedStore({ path: join(dir, 'store.db') })
  /** For each save of a partition's state: which of these devices its filter picks. */
  const exported: Array<{ device: boolean, integration: boolean }> = []
  const ingest = new ClusterIngest({
    redisUrl: server.url, partitions: PARTITIONS, consumer: 'collector-a', sink: store, batchSize: 100, logger,
    lorawanRegistry: directory.registry, partitionKeyOf: directory.partitionKeyOf,
    deviceState: {
      export: (filter) => { exported.push({ device: filter('flood-lw-1'), integration: filter(INTEGRATION) }); return {} },
      trackChanges: () => {},
      exportChanged: () => undefined,
      import: () => 0,
      forget: () => 0,
    },
  })
  const observations: LorawanObservation[] = []
  ingest.on('lorawan', (observation) => observations.push(observation))
  await ingest.start()
  try {
    // As the broker node appends an integration's accepted publish: keyed by the integration.
    const handoff = new StreamHandoff({ redis, keys: clusterKeys(), partitions: PARTITIONS })
    await handoff.append({
      partitionKey: INTEGRATION, topic: chirpstackTopic(INTEGRATION, '0101010101010101'), node: 'node-a', receivedAtMs: Date.now(),
      payload: json(chirpstackUp({ devEui: '0101010101010101', fCnt: 42, decoded: { level_cm: 40, battery_v: 3.6 } })),
    })
    await waitFor(() => store.count('flood') === 1, 10_000, 'the uplink stored')
    expect(observations.map((o) => o.device?.deviceId)).toEqual(['flood-lw-1'])
    expect(ingest.metrics).toMatchObject({ received: 1, lorawanEvents: 1, telemetryStored: 1 })
    // Its alerts are written under the lease of the partition its messages come from.
    expect(ingest.fenceOf('flood-lw-1')?.partition).toBe(partitionOf(INTEGRATION, PARTITIONS))
    expect(ingest.fenceOf('flood-00001')?.partition).toBe(partitionOf('flood-00001', PARTITIONS))
  } finally {
    // Leaving the group saves each held partition's state: the LoRaWAN device's is saved with its integration's.
    await ingest.stop()
    await store.close()
  }
  const withDevice = exported.filter((save) => save.device)
  expect(withDevice.length).toBeGreaterThan(0)
  expect(withDevice.every((save) => save.integration)).toBe(true)
}, 30_000)
