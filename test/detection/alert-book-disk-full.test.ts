/**
 * The alert book on a full disk (SQLITE_FULL under `alerts.db`, a real
 * tmpfs filled to the last byte): detection's writes are neither thrown at
 * the caller (a throw from the MQTT message handler or a timer ends the
 * process) nor lost. They wait in order and land once there is room.
 */
import { join } from 'node:path'
import { unlinkSync } from 'node:fs'
import { Writable } from 'node:stream'
import { afterEach, describe, expect, it } from 'vitest'
import { AlertBook, type Raisable } from '../../detection/alert-book.ts'
import { Detection } from '../../detection/detection.ts'
import type { AlertChange } from '../../shared/alert-contract.ts'
import { createLogger } from '../../shared/logger.ts'
import { isPromise } from '../../shared/maybe-async.ts'
import { waitFor } from '../helpers/broker.ts'
import { fillDisk, mountSmallDisk, type SmallDisk } from '../helpers/full-disk.ts'

let disk: SmallDisk | undefined
afterEach(() => { disk?.unmount(); disk = undefined })

function capturedLogger (): { logger: ReturnType<typeof createLogger>, lines: string[] } {
  const lines: string[] = []
  const destination = new Writable({ write (chunk, _encoding, done) { lines.push(String(chunk)); done() } })
  return { logger: createLogger({ level: 'info', destination }), lines }
}

const finding = (deviceId: string): Raisable => ({ policy: 'firmware-outdated', deviceId, severity: 'medium', summary: `firmware of ${deviceId} is old`, evidence: { fw: '1.0.0' } })

describe('the alert book on a full disk', () => {
  it('queues detection\'s writes in order instead of throwing, stores them all once there is room, then writes at once again', async (context) => {
    disk = mountSmallDisk('4m')
    if (disk.refused) context.skip(`mounting a tmpfs was refused (needs root): ${disk.refused}`)
    const { logger, lines } = capturedLogger()
    const book = new AlertBook({ path: join(disk.dir, 'alerts.db'), logger, retryMs: 50 })
    const first = book.raise(finding('before-full'))
    expect(isPromise(first)).toBe(false)
    fillDisk(join(disk.dir, 'filler'))

    const queued = ['full-1', 'full-2', 'full-3'].map((id) => book.raise(finding(id)))
    for (const answer of queued) expect(isPromise(answer)).toBe(true)
    expect(book.queuedWrites).toBe(3)
    // An operator's write is tried at once, and its failure is the operator's answer.
    const live = first as AlertChange
    expect(() => book.acknowledge(live.alert.id, 'alice')).toThrow(/full/)
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(lines.some((line) => line.includes('alert store: write failed; retrying in order, nothing is lost') && line.includes('full'))).toBe(true)
    expect((book.list() as Array<{ deviceId: string }>).map((a) => a.deviceId)).toEqual(['before-full'])

    unlinkSync(join(disk.dir, 'filler'))
    const changes = await Promise.all(queued)
    expect(changes.map((c) => [c.change, c.alert.deviceId])).toEqual([['opened', 'full-1'], ['opened', 'full-2'], ['opened', 'full-3']])
    expect(book.queuedWrites).toBe(0)
    // Stored in the order they were asked for.
    const stored = (book.list() as Array<{ deviceId: string, detectedAt: string }>).map((a) => a.deviceId)
    expect(stored.sort()).toEqual(['before-full', 'full-1', 'full-2', 'full-3'])
    expect(changes.map((c) => c.alert.detectedAt)).toEqual([...changes.map((c) => c.alert.detectedAt)].sort())
    // The queue drained: synchronous again.
    expect(isPromise(book.raise(finding('after')))).toBe(false)
    await book.close()
  })

  it('closes at once on a disk still full: the queued writes are tried once more, given up and counted', async (context) => {
    disk = mountSmallDisk('4m')
    if (disk.refused) context.skip(`mounting a tmpfs was refused (needs root): ${disk.refused}`)
    const { logger, lines } = capturedLogger()
    const book = new AlertBook({ path: join(disk.dir, 'alerts.db'), logger, retryMs: 60_000 })
    expect(isPromise(book.raise(finding('before-full')))).toBe(false)
    fillDisk(join(disk.dir, 'filler'))
    const queued = ['full-1', 'full-2'].map((id) => book.raise(finding(id)) as Promise<AlertChange>)
    for (const answer of queued) answer.catch(() => {})
    const started = Date.now()
    await book.close()
    expect(Date.now() - started).toBeLessThan(5_000)
    expect(book.writesAbandoned).toBe(2)
    expect(lines.filter((line) => line.includes('given up at close')).length).toBe(2)
    await expect(queued[0]).rejects.toThrow(/full/)
  })
})

describe('detection on a full disk', () => {
  it('takes a reading that raises an alert without throwing, and the alert opens once there is room', async (context) => {
    disk = mountSmallDisk('8m')
    if (disk.refused) context.skip(`mounting a tmpfs was refused (needs root): ${disk.refused}`)
    const { logger } = capturedLogger()
    const opened: string[] = []
    const detection = new Detection({ dataDir: disk.dir, logger, store: () => {}, onAlertChange: (change) => { if (change.change === 'opened') opened.push(`${change.alert.policy}:${change.alert.deviceId}`) } })
    const reading = (device: string, seq: number, fw: string) => ({ measurement: 'flood', tags: { site: 'riverside', device }, fields: { seq, fw, level_cm: 12, battery_v: 3.6 }, timestampMs: Date.now() })
    detection.onTelemetry(reading('flood-a', 1, '3.2.1'), Date.now())
    fillDisk(join(disk.dir, 'filler'))
    // Below the shipped minimum (3.0.0) and a downgrade: two findings, neither storable now.
    expect(() => detection.onTelemetry(reading('flood-a', 2, '2.9.0'), Date.now())).not.toThrow()
    expect(detection.alerts.queuedWrites).toBeGreaterThan(0)
    expect(opened).toEqual([])
    unlinkSync(join(disk.dir, 'filler'))
    await waitFor(() => opened.length === 2, 10_000, 'both alerts opened')
    expect(opened.sort()).toEqual(['firmware-downgrade:flood-a', 'firmware-outdated:flood-a'])
    await detection.stop()
  })
})
