/**
 * Security events while broker.db is on a full disk (a real tmpfs filled
 * to the last byte): the broker cannot queue them for the collector, whose
 * session is persistent, so they are held in memory and published again,
 * in order, once the store takes writes. Before, each was logged as not
 * published and lost to the collector; and every failed batch of the store
 * was an error line of its own (thousands a minute under `placeguard up`).
 * The collector's probe is answered only once the store keeps writes again:
 * the broker refused the devices' messages meanwhile, so detection must not
 * judge them silent (collector/broker-probe.ts).
 */
import { unlinkSync } from 'node:fs'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createSqlitePersistence, PlaceGuardBroker, type SecurityEvent } from '../../broker/index.ts'
import { createLogger } from '../../shared/logger.ts'
import { PROBE_CONTROL_TOPIC } from '../../shared/topics.ts'
import { collectorFiles, connectClient, waitFor } from '../helpers/broker.ts'
import { createTestFleet, type TestFleet } from '../helpers/fleet.ts'
import { rawSession } from '../helpers/raw-mqtt.ts'
import { fillDisk, mountSmallDisk, type SmallDisk } from '../helpers/full-disk.ts'

let fleet: TestFleet
let disk: SmallDisk
let broker: PlaceGuardBroker | undefined
const lines: Array<{ level: number, msg: string, failedBatches?: number }> = []

beforeAll(async () => {
  disk = mountSmallDisk('8m')
  fleet = await createTestFleet([{ deviceId: 'flood-disk', kind: 'flood', site: 'riverside' }])
})

afterAll(async () => {
  await broker?.close()
  fleet?.cleanup()
  disk.unmount()
})

/** A device that sends a PINGREQ before its CONNECT: one `protocol-violation` event, reported before any write of its session. */
async function violate (port: number): Promise<void> {
  const { socket, closed } = await rawSession(port, fleet, 'flood-disk', { connect: false })
  socket.write(Buffer.from([0xc0, 0x00]))
  await closed
}

describe('security events on a full disk', () => {
  it('are held while broker.db refuses writes and reach the collector in order once it takes them; failures are logged once a period; the probe waits', async (context) => {
    if (disk.refused) context.skip(`mounting a tmpfs was refused (needs root): ${disk.refused}`)
    const logger = createLogger({ level: 'info', destination: new Writable({ write (chunk, _encoding, done) { lines.push(JSON.parse(String(chunk))); done() } }) })
    broker = new PlaceGuardBroker({
      tls: { caCert: fleet.paths.caCert, serverCert: fleet.paths.serverCert, serverKey: fleet.paths.serverKey, crl: fleet.paths.crl },
      host: '127.0.0.1', port: 0, logger,
      aedes: { persistence: createSqlitePersistence({ path: join(disk.dir, 'broker.db'), logger }) as never },
    })
    const reported: SecurityEvent[] = []
    broker.on('security-event', (event) => { reported.push(event) })
    const { port } = await broker.listen()
    const url = `mqtts://127.0.0.1:${port}`
    const collector = await connectClient(url, fleet, collectorFiles(fleet), 'collector-disk', { clean: false })
    const received: SecurityEvent[] = []
    collector.on('message', (_topic, payload) => { received.push(JSON.parse(String(payload)) as SecurityEvent) })
    await collector.subscribeAsync('$SYS/placeguard/events/#', { qos: 1 })

    fillDisk(join(disk.dir, 'filler'))
    for (let i = 0; i < 4; i++) await violate(port)
    await new Promise((resolve) => setTimeout(resolve, 1_500))
    const during = (events: SecurityEvent[]) => events.filter((event) => event.type === 'protocol-violation').map((event) => event.at)
    expect(during(reported).length).toBe(4)
    expect(during(received)).toEqual([])
    // The probe waits for the store: no PUBACK while it fails.
    let probeAnsweredAt: number | undefined
    void collector.publishAsync(PROBE_CONTROL_TOPIC, '', { qos: 1 }).then(() => { probeAnsweredAt = Date.now() })
    await new Promise((resolve) => setTimeout(resolve, 1_000))
    expect(probeAnsweredAt).toBeUndefined()
    const failures = lines.filter((line) => line.msg.startsWith('broker state not committed'))
    expect(failures.length).toBe(1)
    expect(lines.filter((line) => line.msg.startsWith('security events not published; held')).length).toBe(1)

    unlinkSync(join(disk.dir, 'filler'))
    const freedAt = Date.now()
    await waitFor(() => during(received).length === during(reported).length, 20_000, () => `the held events: ${during(received).length} of ${during(reported).length}`)
    expect(during(received)).toEqual(during(reported))
    await waitFor(() => lines.some((line) => line.msg === 'security events held back are all published'), 5_000, 'the all-published line')
    expect(lines.some((line) => line.msg === 'broker state commits again')).toBe(true)
    await waitFor(() => probeAnsweredAt !== undefined, 15_000, 'the probe answered')
    expect(probeAnsweredAt! - freedAt).toBeGreaterThan(1_000)
    collector.end(true)
  }, 60_000)
})
