/**
 * The broker's own small files on a full disk: the quarantine list and the
 * session owners. A save that fails must not undo or skip what it records
 * (a quarantine still drops the device's session and refuses it, a
 * persistent session still connects) nor end the broker: the expiry sweep,
 * a timer, used to throw out of setInterval.
 */
import { readFileSync, unlinkSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { connectClient, startBroker } from '../helpers/broker.ts'
import { createTestFleet, type TestFleet } from '../helpers/fleet.ts'
import { fillDisk, mountSmallDisk, type SmallDisk } from '../helpers/full-disk.ts'

let fleet: TestFleet
let disk: SmallDisk
beforeAll(async () => {
  disk = mountSmallDisk('256k', 'pg-quarantine-full-')
  fleet = await createTestFleet(['full-1', 'full-2', 'full-3'].map((deviceId) => ({ deviceId, kind: 'flood', site: 'full' })))
})
afterAll(() => {
  fleet?.cleanup()
  disk?.unmount()
})

describe('quarantine and session owners on a full disk', () => {
  it('quarantine, expiry and a persistent session work in memory, each failed save is logged, and the next save that can write catches up', async (context) => {
    if (disk.refused) context.skip(`mounting a tmpfs was refused (needs root): ${disk.refused}`)
    const quarantineFile = join(disk.dir, 'quarantine.json')
    const sessionOwnersFile = join(disk.dir, 'session-owners.jsonl')
    const running = await startBroker(fleet, {}, { quarantineFile, sessionOwnersFile })
    try {
      const filler = join(disk.dir, 'filler')
      fillDisk(filler)
      // A persistent session: its owner cannot be written, and it connects all the same.
      const persistent = await connectClient(running.url, fleet, fleet.device('full-1'), 'full-1', { clean: false })
      expect(running.logs.some((line) => line.includes('session owners not saved'))).toBe(true)

      // A quarantine that cannot be saved still drops the session, reports it, and refuses the device.
      const closed = new Promise<void>((resolve) => persistent.once('close', () => resolve()))
      running.broker.quarantine({ deviceId: 'full-1', durationMs: 1_500, reason: 'test', by: 'operator:test' })
      await closed
      persistent.end(true)
      await running.waitForEvent((e) => e.type === 'quarantined' && e.deviceId === 'full-1')
      await expect(connectClient(running.url, fleet, fleet.device('full-1'), 'full-1', { reconnectPeriod: 0 })).rejects.toThrow()
      expect(running.logs.some((line) => line.includes('quarantine list not saved'))).toBe(true)

      // The expiry sweep saves too, and fails: the broker lives on and lifts the quarantine.
      await running.waitForEvent((e) => e.type === 'quarantine-lifted' && e.deviceId === 'full-1', 5_000)
      const device = await connectClient(running.url, fleet, fleet.device('full-1'), 'full-1')
      device.end(true)

      // Room again: the next change is saved, with what the failed saves held.
      unlinkSync(filler)
      running.broker.quarantine({ deviceId: 'full-2', durationMs: 60_000, reason: 'test', by: 'operator:test' })
      expect(JSON.parse(readFileSync(quarantineFile, 'utf8'))).toEqual([expect.objectContaining({ deviceId: 'full-2' })])
      // The next owner recorded rewrites the file whole, full-1's binding with it.
      const another = await connectClient(running.url, fleet, fleet.device('full-3'), 'full-3', { clean: false })
      another.end(true)
      const owners = readFileSync(sessionOwnersFile, 'utf8')
      expect(owners).toContain('"id":"full-1"')
      expect(owners).toContain('"id":"full-3"')
    } finally {
      await running.close()
    }
  })
})
