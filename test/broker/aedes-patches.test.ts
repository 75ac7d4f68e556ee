import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import type { Readable } from 'node:stream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { aedesPatchesApplied, applyAedesPatches } from '../../broker/aedes-patches.ts'
import { createSqlitePersistence, PlaceGuardBroker, type SqlitePersistence } from '../../broker/index.ts'
import { createLogger } from '../../shared/logger.ts'
import { collectorFiles, connectClient, waitFor } from '../helpers/broker.ts'
import { createTestFleet, type TestFleet } from '../helpers/fleet.ts'

const connectJs = join(createRequire(import.meta.url).resolve('aedes'), '..', 'lib', 'handlers', 'connect.js')
const connectUrl = pathToFileURL(connectJs).href
const qosPacketJs = join(connectJs, '..', '..', 'qos-packet.js')

let fleet: TestFleet
let persistence: SqlitePersistence
let broker: PlaceGuardBroker
let url: string
/** aedes' queue streams opened: one per CONNECT that streamed its session's queue. */
let streamsOpened = 0

beforeAll(async () => {
  fleet = await createTestFleet([{ deviceId: 'patch-001', kind: 'flood', site: 'riverside' }])
  persistence = createSqlitePersistence({ path: join(fleet.dataDir, 'broker.db') })
  const outgoingStream = persistence.outgoingStream.bind(persistence)
  persistence.outgoingStream = (client): Readable => { streamsOpened++; return outgoingStream(client) }
  broker = new PlaceGuardBroker({
    tls: { caCert: fleet.paths.caCert, serverCert: fleet.paths.serverCert, serverKey: fleet.paths.serverKey, crl: fleet.paths.crl },
    host: '127.0.0.1', port: 0, logger: createLogger({ level: 'silent' }), aedes: { persistence },
  })
  url = `mqtts://127.0.0.1:${(await broker.listen()).port}`
})
afterAll(async () => {
  await broker.close()
  fleet.cleanup()
})

describe('aedes, patched as it loads', () => {
  it('applies each patch to the text it was written for, and leaves any other text as it is', () => {
    const original = readFileSync(connectJs, 'utf8')
    const patched = applyAedesPatches(connectUrl, original)
    expect(patched).toMatchObject({ applied: ['empty-queue-clean'], skipped: [] })
    expect(patched.source).toContain('persistence.outgoingEmpty(client)')
    // A later aedes whose emptyQueue reads differently is loaded unchanged, the patch named as skipped.
    const changed = original.replace('const outgoing = persistence.outgoingStream(client)', 'const outgoing = persistence.outgoingStream(client, arg)')
    expect(applyAedesPatches(connectUrl, changed)).toEqual({ source: changed, applied: [], skipped: [{ name: 'empty-queue-clean', file: '/aedes/lib/handlers/connect.js' }] })
    expect(applyAedesPatches('file:///x/other.js', original)).toEqual({ source: original, applied: [], skipped: [] })
    const qosPacket = readFileSync(qosPacketJs, 'utf8')
    expect(applyAedesPatches(pathToFileURL(qosPacketJs).href, qosPacket)).toMatchObject({ applied: ['unused-packet-id'], skipped: [] })
  })

  it('runs in the tests as in `placeguard`: the aedes loaded here is patched', () => {
    expect(aedesPatchesApplied().sort()).toEqual(['empty-queue-clean', 'unused-packet-id'])
  })

  it('a clean session with nothing queued streams no queue; a persistent one still gets what was queued while it was away', async () => {
    const before = streamsOpened
    const device = await connectClient(url, fleet, fleet.device('patch-001'), 'patch-001')
    expect(streamsOpened).toBe(before)

    // The collector's persistent session: subscribed at QoS 1, away while the device publishes.
    const collector = await connectClient(url, fleet, collectorFiles(fleet), 'collector', { clean: false })
    await collector.subscribeAsync('places/#', { qos: 1 })
    await collector.endAsync()
    await device.publishAsync('places/riverside/flood/patch-001/telemetry', '{"seq":1}', { qos: 1 })
    await waitFor(() => persistence.queuedFor('collector') === 1, 5_000, 'the message queued for the collector')

    const streamsBefore = streamsOpened
    const back = await connectClient(url, fleet, collectorFiles(fleet), 'collector', { clean: false })
    const received = new Promise<string>((resolve) => back.once('message', (_topic, payload) => resolve(payload.toString())))
    expect(await received).toBe('{"seq":1}')
    expect(streamsOpened).toBe(streamsBefore + 1)

    // A clean session of the same id after that: cleanSubscriptions emptied the queue, nothing to stream.
    await back.endAsync()
    const clean = await connectClient(url, fleet, collectorFiles(fleet), 'collector', { clean: true })
    expect(streamsOpened).toBe(streamsBefore + 1)
    await clean.endAsync()
    await device.endAsync()
  })
})
