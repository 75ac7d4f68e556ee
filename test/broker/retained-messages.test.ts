import { beforeAll, describe, expect, it } from 'vitest'
import { aedesOf } from '../../broker/broker.ts'
import { collectorFiles, connectClient, useFleetWithBroker, waitFor } from '../helpers/broker.ts'

const ROOT = 'places/riverside/flood/flood-001'

const env = useFleetWithBroker()
beforeAll(() => env.fleet.pki.issueMany([{ deviceId: 'flood-001', kind: 'flood', site: 'riverside' }]))

async function retainedHeld (pattern: string): Promise<Array<{ topic: string, bytes: number }>> {
  const held: Array<{ topic: string, bytes: number }> = []
  const persistence = (aedesOf(env.broker.broker) as unknown as { persistence: unknown }).persistence as { createRetainedStream: (p: string) => AsyncIterable<{ topic: string, payload: Buffer }> }
  for await (const packet of persistence.createRetainedStream(pattern)) held.push({ topic: packet.topic, bytes: packet.payload.length })
  return held
}

describe('retained messages from devices', () => {
  it('a device ends with at most one retained message: its last state on its telemetry topic, size-capped', async () => {
    const device = await connectClient(env.broker.url, env.fleet, env.fleet.device('flood-001'), 'flood-001')
    const big = Buffer.alloc(200 * 1024, 'x')
    await device.publishAsync(`${ROOT}/telemetry`, '{"seq":1}', { qos: 1, retain: true })
    for (const sub of ['a', 'b', 'c', 'd', 'e']) await device.publishAsync(`${ROOT}/${sub}`, big, { qos: 1, retain: true })
    await device.publishAsync(`${ROOT}/telemetry`, big, { qos: 1, retain: true })
    await device.publishAsync(`${ROOT}/telemetry`, '{"seq":2}', { qos: 1, retain: true })
    await device.publishAsync(`${ROOT}/telemetry`, big, { qos: 1, retain: true })
    await device.endAsync()

    expect(await retainedHeld('places/#')).toEqual([{ topic: `${ROOT}/telemetry`, bytes: '{"seq":2}'.length }])
    expect(env.broker.broker.retainedRefused).toBe(7)

    // A new subscriber is replayed that one message, and it is the last small state.
    const collector = await connectClient(env.broker.url, env.fleet, collectorFiles(env.fleet), 'collector-retained')
    const replayed: string[] = []
    collector.on('message', (topic, payload, packet) => { if (packet.retain) replayed.push(`${topic} ${payload.length}`) })
    await collector.subscribeAsync(`${ROOT}/#`, { qos: 1 })
    await waitFor(() => replayed.length >= 1, 10_000, 'the retained state')
    expect(replayed).toEqual([`${ROOT}/telemetry ${'{"seq":2}'.length}`])
    await collector.endAsync()
  })

  it('still delivers a refused retained message live, unretained', async () => {
    const fleet = env.fleet
    const collector = await connectClient(env.broker.url, fleet, collectorFiles(fleet), 'collector-live')
    const live: Array<{ topic: string, retain: boolean }> = []
    collector.on('message', (topic, _payload, packet) => live.push({ topic, retain: packet.retain }))
    await collector.subscribeAsync(`${ROOT}/extra`, { qos: 1 })
    const device = await connectClient(env.broker.url, fleet, fleet.device('flood-001'), 'flood-001')
    await device.publishAsync(`${ROOT}/extra`, 'x', { qos: 1, retain: true })
    await waitFor(() => live.length >= 1, 10_000, 'the live message')
    expect(live).toEqual([{ topic: `${ROOT}/extra`, retain: false }])
    expect(await retainedHeld(`${ROOT}/extra`)).toEqual([])
    await device.endAsync()
    await collector.endAsync()
  })
})
