/**
 * `placeguard up`'s collector with its data directory on a full disk (a
 * real tmpfs filled to the last byte): the alerts it finds meanwhile are
 * neither thrown out of the process nor lost. The alert book queues them
 * (detection/alert-book.ts), the outbox queues their deliveries
 * (app/ordered-writes.ts), and once there is room every one is stored and
 * reaches the SOC's webhook, in the order it was found (at least once, each
 * under its own delivery id).
 */
import { randomBytes } from 'node:crypto'
import { cpSync, unlinkSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type CollectorService, createCollectorService, loadConfig } from '../../app/index.ts'
import { OrderedWrites } from '../../app/ordered-writes.ts'
import { createLogger } from '../../shared/logger.ts'
import { type RunningBroker, startBroker, waitFor } from '../helpers/broker.ts'
import { createTestFleet, type TestFleet } from '../helpers/fleet.ts'
import { fillDisk, mountSmallDisk, type SmallDisk } from '../helpers/full-disk.ts'
import { type HttpReceiver, startHttpReceiver } from '../helpers/http-receiver.ts'

let fleet: TestFleet
let broker: RunningBroker
let soc: HttpReceiver
let disk: SmallDisk
let service: CollectorService | undefined
const uncaught: Error[] = []
const onUncaught = (error: Error): void => { uncaught.push(error) }

beforeAll(async () => {
  disk = mountSmallDisk('16m')
  if (disk.refused) return
  fleet = await createTestFleet()
  ;[broker, soc] = await Promise.all([startBroker(fleet), startHttpReceiver()])
  cpSync(join(fleet.dataDir, 'pki'), join(disk.dir, 'pki'), { recursive: true })
  process.on('uncaughtException', onUncaught)
})

afterAll(async () => {
  process.off('uncaughtException', onUncaught)
  await service?.stop()
  await Promise.all([broker?.close(), soc?.stop()])
  fleet?.cleanup()
  disk.unmount()
})

describe('the collector on a full disk', () => {
  it('keeps every alert found while the disk is full, and delivers each, in order, once there is room', async (context) => {
    if (disk.refused) context.skip(`mounting a tmpfs was refused (needs root): ${disk.refused}`)
    const config = loadConfig({
      env: {},
      flags: { dataDir: disk.dir, delivery: { sinks: [{ type: 'webhook', url: soc.url, secrets: [`whsec_${randomBytes(24).toString('base64')}`] }] } },
    })
    service = createCollectorService(config, broker.url, createLogger({ level: 'silent' }))
    await service.start()
    const raise = (i: number) => service!.detection.raiseSystemAlert({ policy: 'delivery-failing', deviceId: `sink:soc-${i}`, severity: 'high', summary: `sink soc-${i} refuses deliveries`, evidence: { sink: `soc-${i}` } })
    // Delivery is at least once under a stable id (webhook-id): a send whose confirmation the full outbox could not
    // record goes again under the same id, and the receiver drops the copy. What counts is each id's first arrival.
    const delivered = () => {
      const first = new Map<string, string>()
      for (const request of soc.requests) {
        const id = String(request.headers['webhook-id'])
        const deviceId = (JSON.parse(request.body) as { deviceId: string }).deviceId
        if (first.has(id)) expect(deviceId).toBe(first.get(id))
        else first.set(id, deviceId)
      }
      return [...first.values()]
    }
    raise(0)
    await waitFor(() => delivered().includes('sink:soc-0'), 10_000, 'the first alert delivered')

    fillDisk(join(disk.dir, 'filler'))
    for (let i = 1; i <= 5; i++) raise(i)
    await new Promise((resolve) => setTimeout(resolve, 1_500))
    expect(service.detection.alerts.queuedWrites).toBeGreaterThan(0)
    expect(delivered()).toEqual(['sink:soc-0'])

    unlinkSync(join(disk.dir, 'filler'))
    await waitFor(() => delivered().length === 6, 20_000, () => `6 alerts delivered, got ${delivered().join(', ')}`)
    expect(delivered()).toEqual(['sink:soc-0', 'sink:soc-1', 'sink:soc-2', 'sink:soc-3', 'sink:soc-4', 'sink:soc-5'])
    expect((await service.detection.alerts.list({ policy: 'delivery-failing' })).length).toBe(6)
    expect(uncaught).toEqual([])
  }, 60_000)
})

describe('ordered writes to a synchronous store', () => {
  it('run at once while nothing waits; a write that throws is retried, and the writes after it wait behind it in order', async () => {
    const writes = new OrderedWrites({ logger: createLogger({ level: 'silent' }), what: 'test write' })
    const landed: string[] = []
    writes.runOrPush(() => landed.push('a'))
    expect(landed).toEqual(['a'])
    let full = true
    const write = (name: string) => () => {
      if (full) throw new Error('database or disk is full')
      landed.push(name)
    }
    writes.runOrPush(write('b'))
    writes.runOrPush(write('c'))
    expect(writes.pending).toBe(2)
    await new Promise((resolve) => setTimeout(resolve, 100))
    expect(landed).toEqual(['a'])
    full = false
    await writes.settled()
    expect(landed).toEqual(['a', 'b', 'c'])
    expect(writes.retried).toBeGreaterThan(0)
    writes.runOrPush(write('d'))
    expect(landed).toEqual(['a', 'b', 'c', 'd'])
    await writes.stop()
  })
})
