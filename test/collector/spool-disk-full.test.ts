/**
 * A full disk under the spool (SQLITE_FULL from its WAL) is back-pressure,
 * not a crash: the collector keeps running, acknowledges nothing it could
 * not store, says which data directory is full, and stores everything once
 * there is room. A real full filesystem: a small tmpfs mounted as the data dir.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, unlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { aedesOf } from '../../broker/broker.ts'
import { Collector } from '../../collector/collector.ts'
import { Spool } from '../../collector/spool.ts'
import { createLogger } from '../../shared/logger.ts'
import { connectClient, type RunningBroker, startBroker, waitFor } from '../helpers/broker.ts'
import { fillDisk } from '../helpers/full-disk.ts'
import { createTestFleet, type TestFleet } from '../helpers/fleet.ts'

let fleet: TestFleet
let broker: RunningBroker
let dataDir: string
let mountRefused: string | undefined

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'pg-disk-full-'))
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', dataDir], { stdio: 'pipe' })
  } catch (error) {
    mountRefused = String((error as { stderr?: Buffer }).stderr ?? error)
    return
  }
  fleet = await createTestFleet([{ deviceId: 'flood-disk', kind: 'flood', site: 'riverside' }])
  broker = await startBroker(fleet, { publishRatePerSec: 0 })
})

afterAll(async () => {
  await broker?.close()
  fleet?.cleanup()
  // Lazy: a spool left open by a failed test must not keep the mount behind.
  if (!mountRefused) execFileSync('umount', ['-l', dataDir])
  rmSync(dataDir, { recursive: true, force: true })
})

async function inFlightAtBroker (clientId: string): Promise<number> {
  // aedes' persistence is public at runtime but missing from its types.
  const { persistence } = aedesOf(broker.broker) as unknown as { persistence: { outgoingStream: (client: { id: string }) => AsyncIterable<unknown> } }
  let count = 0
  for await (const packet of persistence.outgoingStream({ id: clientId })) if (packet) count++
  return count
}

describe('spool on a full disk', () => {
  it('keeps running, acknowledges nothing it could not store, names the data directory, and stores everything once the disk has room', async (context) => {
    if (mountRefused) context.skip(`mounting a tmpfs was refused (needs root): ${mountRefused}`)
    const logs: string[] = []
    const destination = new Writable({ write (chunk, _encoding, done) { logs.push(String(chunk)); done() } })
    const spool = new Spool({ path: join(dataDir, 'spool.db'), maxBytes: 100_000_000 })
    const collector = new Collector({
      brokerUrl: broker.url, clientId: 'collector-disk', spool, logger: createLogger({ level: 'info', destination }),
      tls: { caCert: fleet.paths.caCert, cert: fleet.paths.collectorCert, key: fleet.paths.collectorKey },
    })
    await collector.start()
    const device = await connectClient(broker.url, fleet, fleet.device('flood-disk'), 'flood-disk')
    const filler = join(dataDir, 'filler')
    try {
      await waitFor(() => collector.pendingMessages === 0 && spool.pendingPoints > 0, 10_000, 'the connect events to be spooled')
      const before = spool.pendingPoints
      fillDisk(filler)
      const ts = Date.now()
      await Promise.all(Array.from({ length: 50 }, (_, i) => device.publishAsync('places/riverside/flood/flood-disk/telemetry',
        JSON.stringify({ ts: ts + i, seq: i, fw: '1.2.0', level_cm: 40, battery_v: 3.6 }), { qos: 1 })))
      await waitFor(() => collector.metrics.spoolWriteErrors >= 2, 20_000, 'the collector to retry the spool write')
      const log = logs.join('')
      expect(log.match(/PG_ERR_SPOOL_UNWRITABLE/g)).toHaveLength(1) // retried, but said once (rate-limited)
      expect(log).toContain(`data directory ${dataDir}`)
      expect(log).toMatch(/full/i)
      expect(spool.pendingPoints).toBe(before)
      expect(await inFlightAtBroker('collector-disk')).toBeGreaterThanOrEqual(50) // nothing acknowledged
      unlinkSync(filler)
      await waitFor(() => spool.pendingPoints >= before + 50, 30_000, 'the 50 messages in the spool once the disk has room')
      let held = -1
      await waitFor(() => {
        void inFlightAtBroker('collector-disk').then((count) => { held = count })
        return held === 0
      }, 30_000, 'the broker to hold nothing unacknowledged')
      const seqs = spool.peek(10_000)!.points.filter((point) => point.measurement === 'flood').map((point) => point.fields.seq)
      expect(seqs.sort((a, b) => Number(a) - Number(b))).toEqual(Array.from({ length: 50 }, (_, i) => i))
      expect(logs.join('')).toContain('the spool takes messages again')
    } finally {
      device.end(true)
      await collector.stop()
      spool.close()
    }
  }, 120_000)
})
