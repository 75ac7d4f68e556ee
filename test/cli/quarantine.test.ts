import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type RunningBroker, startBroker } from '../helpers/broker.ts'
import { createTestFleet, type TestFleet } from '../helpers/fleet.ts'
import { mosquittoPub } from '../helpers/mosquitto-clients.ts'

let fleet: TestFleet
let running: RunningBroker

beforeAll(async () => {
  fleet = await createTestFleet([{ deviceId: 'flood-001', kind: 'flood', site: 'riverside' }])
  running = await startBroker(fleet, {}, { quarantineFile: join(fleet.dataDir, 'quarantine.json') })
})
afterAll(async () => {
  await running.close()
  fleet.cleanup()
})

/** The real `placeguard` command, run without blocking this process (the broker lives here). */
function placeguard (...args: string[]): Promise<{ status: number, stdout: string, stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['bin/placeguard.js', '--data-dir', fleet.dataDir, ...args], { encoding: 'utf8' }, (error, stdout, stderr) => {
      resolve({ status: error ? Number(error.code ?? 1) : 0, stdout, stderr })
    })
  })
}

describe('placeguard quarantine (CLI)', () => {
  it('add, list and lift against the running broker', async () => {
    const add = await placeguard('quarantine', 'add', 'flood-001', '--for', '2h', '--reason', 'suspected tampering, INC-1042', '--broker', running.url)
    expect(add).toMatchObject({ status: 0, stdout: 'flood-001 quarantined for 2h\n' })
    const event = await running.waitForEvent((e) => e.type === 'quarantined' && e.deviceId === 'flood-001')
    expect(String(event.details?.by)).toMatch(/^operator /)
    const tls = { cafile: fleet.paths.caCert, ...fleet.device('flood-001') }
    expect((await mosquittoPub(running.port, tls, 'flood-001', 'places/riverside/flood/flood-001/telemetry', '{}')).code).not.toBe(0)

    const list = await placeguard('quarantine', 'list', '--json')
    const entries = JSON.parse(list.stdout) as Array<{ deviceId: string, reason: string, until: string }>
    expect(entries).toEqual([expect.objectContaining({ deviceId: 'flood-001', reason: 'suspected tampering, INC-1042' })])
    expect(Date.parse(entries[0]!.until) - Date.now()).toBeGreaterThan(119 * 60_000)
    expect((await placeguard('quarantine', 'list')).stdout).toMatch(/^deviceId\s+until\s+by\s+reason\nflood-001\s/)

    expect(await placeguard('quarantine', 'lift', 'flood-001', '--broker', running.url)).toMatchObject({ status: 0 })
    await running.waitForEvent((e) => e.type === 'quarantine-lifted' && e.deviceId === 'flood-001')
    expect(JSON.parse((await placeguard('quarantine', 'list', '--json')).stdout)).toEqual([])
    expect((await mosquittoPub(running.port, tls, 'flood-001', 'places/riverside/flood/flood-001/telemetry', '{}')).code).toBe(0)
  })

  it('refuses bad input and says when the broker cannot be reached', async () => {
    const long = await placeguard('quarantine', 'add', 'flood-001', '--for', '90d', '--reason', 'x', '--broker', running.url)
    expect(long.status).toBe(2)
    expect(long.stderr).toContain('PG_ERR_INPUT_INVALID: --for: 90d is longer than 30 days')
    const badId = await placeguard('quarantine', 'lift', 'flood/#', '--broker', running.url)
    expect(badId.status).toBe(2)
    expect(badId.stderr).toContain('PG_ERR_INPUT_INVALID: deviceId:')
    const down = await placeguard('quarantine', 'lift', 'flood-001', '--broker', 'mqtts://127.0.0.1:1')
    expect(down.status).toBe(1)
    expect(down.stderr).toContain('PG_ERR_BROKER_UNREACHABLE: cannot reach the broker at mqtts://127.0.0.1:1')
  })
})
