/**
 * A supplier's command and the publish rate limit (issue 17): the broker
 * reports `supplier-command` — which the collector writes into the audit
 * trail as sent — only for a command the rate limit admitted. A supplier
 * that floods a device's cmd topic past its budget is disconnected with
 * `rate-limited`, and the command refused then is not reported as sent.
 * Debian's mosquitto_pub sends the commands, one per line, at once.
 */
import { spawn } from 'node:child_process'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type RunningBroker, startBroker, waitFor } from '../helpers/broker.ts'
import { createTestFleet, type TestFleet } from '../helpers/fleet.ts'
import { mosquittoSub, type Subscriber } from '../helpers/mosquitto-clients.ts'

const HOUR_MS = 3_600_000
const FLOOD_CMD = 'places/riverside/flood/flood-1/cmd'

let fleet: TestFleet
let running: RunningBroker
let flood: Subscriber

beforeAll(async () => {
  fleet = await createTestFleet([{ deviceId: 'flood-1', kind: 'flood', site: 'riverside' }])
  const now = Date.now()
  await fleet.pki.issueSupplier({
    supplierId: 'acme-pumps', kinds: ['flood'], sites: ['riverside'],
    windows: [{ from: new Date(now - HOUR_MS).toISOString(), until: new Date(now + HOUR_MS).toISOString() }],
  })
  // One command at once, then one a second; a command that would wait over 100 ms overflows: the second of a burst.
  running = await startBroker(fleet, { publishRatePerSec: 1, publishBurst: 1, maxThrottleMs: 100 }, { supplierGrant: (id) => fleet.pki.supplierGrant(id) })
  flood = mosquittoSub(running.port, { cafile: fleet.paths.caCert, ...fleet.device('flood-1') }, 'flood-1', [FLOOD_CMD])
  await flood.ready
})

afterAll(async () => {
  flood?.stop()
  await running?.close()
  fleet?.cleanup()
})

/** mosquitto_pub -l: each line of stdin a message, sent as fast as the connection takes them. */
function publishLines (lines: string[]): Promise<number | null> {
  const files = fleet.device('acme-pumps')
  const child = spawn('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(running.port), '--cafile', fleet.paths.caCert, '--cert', files.cert, '--key', files.key,
    '-i', 'acme-pumps', '-t', FLOOD_CMD, '-q', '1', '-l'])
  child.stdin.end(lines.map((line) => `${line}\n`).join(''))
  return new Promise((resolve) => child.on('close', resolve))
}

describe('a supplier past its publish budget', () => {
  it('is disconnected, and only the command the rate limit admitted is reported as sent', async () => {
    await publishLines(['{"n":1}', '{"n":2}', '{"n":3}'])
    const limited = await running.waitForEvent((e) => e.type === 'rate-limited' && e.deviceId === 'acme-pumps' && e.details?.disconnected === true)
    expect(limited.details).toMatchObject({ role: 'supplier' })
    await waitFor(() => flood.lines.includes(`${FLOOD_CMD} {"n":1}`), 10_000, 'the admitted command at flood-1')
    const reported = running.events.filter((e) => e.type === 'supplier-command' && e.deviceId === 'acme-pumps')
    expect(reported).toHaveLength(1)
    // What reached the device is what was reported: the refused command reached no one.
    expect(flood.lines).toEqual([`${FLOOD_CMD} {"n":1}`])
    expect(reported[0]!.details).toMatchObject({ targetDeviceId: 'flood-1', payloadBytes: Buffer.byteLength('{"n":1}'), commandId: expect.stringMatching(/^[0-9a-f-]{36}$/) })
  }, 60_000)
})
