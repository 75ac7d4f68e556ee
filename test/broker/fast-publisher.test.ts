import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { aedesOf } from '../../broker/broker.ts'
import { collectorFiles, connectClient, type RunningBroker, startBroker, waitFor } from '../helpers/broker.ts'
import { createTestFleet, type TestFleet } from '../helpers/fleet.ts'

let fleet: TestFleet
let running: RunningBroker

beforeAll(async () => {
  fleet = await createTestFleet([{ deviceId: 'gateway-1', kind: 'energy', site: 'depot' }])
  running = await startBroker(fleet, { publishRatePerSec: 0 })
})

afterAll(async () => {
  await running?.close()
  fleet?.cleanup()
})

describe('one fast publisher over mutual TLS', () => {
  it('delivers every message in order while the broker\'s internal queue stays bounded', async () => {
    // Both halves of the fix rely on named internals of the pinned aedes and
    // mqemitter; they warn instead of installing if those ever change.
    const warnings: string[] = []
    const onWarning = (warning: Error & { code?: string }): void => { warnings.push(warning.code ?? warning.message) }
    process.on('warning', onWarning)
    const total = 30_000
    const subscriber = await connectClient(running.url, fleet, collectorFiles(fleet), 'collector')
    const mq = (aedesOf(running.broker) as unknown as { mq: { length: number } }).mq
    let received = 0
    let outOfOrder = 0
    let maxQueue = 0
    subscriber.on('message', (_topic, payload) => {
      if (payload.readUInt32BE(0) !== received) outOfOrder++
      received++
      maxQueue = Math.max(maxQueue, mq.length)
    })
    await subscriber.subscribeAsync('places/#', { qos: 0 })
    const files = fleet.device('gateway-1')
    const publisher = spawn(process.execPath, [join(import.meta.dirname, '..', 'helpers', 'publisher-process.ts'), running.url,
      fleet.paths.caCert, files.cert, files.key, 'gateway-1', 'places/depot/energy/gateway-1/telemetry', String(total)], { stdio: 'inherit' })
    await waitFor(() => received === total, 60_000, `${total} messages (got ${received})`)
    expect(outOfOrder).toBe(0)
    // Without read back-pressure aedes dispatches every packet as it arrives
    // and this queue held most of the run (159k of 200k in bench:broker).
    expect(maxQueue).toBeLessThan(2_000)
    publisher.kill()
    subscriber.end(true)
    process.off('warning', onWarning)
    expect(warnings.filter((code) => code.startsWith('PG_'))).toEqual([])
  })
})
