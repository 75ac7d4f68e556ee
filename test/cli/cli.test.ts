import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import mqtt from 'mqtt'
import { afterAll, describe, expect, it, vi } from 'vitest'
import { freePort } from '../helpers/free-port.ts'

const dataDir = mkdtempSync(join(tmpdir(), 'placeguard-cli-'))
afterAll(() => rmSync(dataDir, { recursive: true, force: true }))

/** Runs the real `placeguard` command as a user would (Node 24 from the project). */
function placeguard (...args: string[]): { status: number | null, stdout: string, stderr: string } {
  const result = spawnSync(process.execPath, ['bin/placeguard.js', '--data-dir', dataDir, ...args], { encoding: 'utf8' })
  return { status: result.status, stdout: result.stdout, stderr: result.stderr }
}

describe('placeguard pki (CLI)', () => {
  it('init, issue, revoke and list, with JSON output', () => {
    expect(placeguard('pki', 'init').status).toBe(0)
    expect(placeguard('pki', 'issue', 'flood-7', '--kind', 'flood', '--site', 'riverside').status).toBe(0)
    expect(placeguard('pki', 'issue', 'home-7', '--kind', 'housing', '--site', 'block-a', '--key', 'rsa', '--days', '30').status).toBe(0)
    expect(placeguard('pki', 'revoke', 'flood-7').status).toBe(0)
    const list = placeguard('pki', 'list', '--json')
    expect(list.status).toBe(0)
    const entries = JSON.parse(list.stdout) as Array<{ id: string, status: string, kind: string, keyAlgorithm: string }>
    expect(entries.map((e) => [e.id, e.kind, e.status, e.keyAlgorithm])).toEqual([
      ['flood-7', 'flood', 'revoked', 'ecdsa-p256'],
      ['home-7', 'housing', 'active', 'rsa-2048'],
    ])
    expect(placeguard('pki', 'list').stdout).toMatch(/^ID\s+IDENTITY\s+KIND\s+SITE\s+SERIAL\s+NOT AFTER\s+STATUS\n/)
  })

  it('renews a device: a new certificate, the old one superseded', () => {
    const renew = placeguard('pki', 'renew', 'home-7', '--days', '90')
    expect(renew.status).toBe(0)
    expect(renew.stdout).toMatch(/^renewed home-7: serial [0-9a-f]+ until .*\n {2}superseded serial [0-9a-f]+ stays valid until /)
    const entries = JSON.parse(placeguard('pki', 'list', '--json').stdout) as Array<{ id: string, status: string }>
    expect(entries.filter((e) => e.id === 'home-7').map((e) => e.status)).toEqual(['superseded', 'active'])
    const unknown = placeguard('pki', 'renew', 'nobody-9')
    expect(unknown.status).toBe(1)
    expect(unknown.stderr).toContain('PG_ERR_PKI_UNKNOWN_DEVICE')
  })

  it('refuses a reserved name as a device id, revokes one certificate by serial, and reconciles', () => {
    const reserved = placeguard('pki', 'issue', 'collector', '--kind', 'flood', '--site', 'a')
    expect(reserved.status).toBe(2)
    expect(reserved.stderr).toContain('PG_ERR_INPUT_INVALID: deviceId:')
    expect(reserved.stderr).toContain('reserved')
    const before = JSON.parse(placeguard('pki', 'list', '--json').stdout) as Array<{ id: string, status: string, serial: string }>
    const superseded = before.find((e) => e.id === 'home-7' && e.status === 'superseded')!
    const revoke = placeguard('pki', 'revoke', '--serial', superseded.serial)
    expect(revoke.status).toBe(0)
    expect(revoke.stdout).toContain(`revoked serial ${superseded.serial} (home-7)`)
    const after = JSON.parse(placeguard('pki', 'list', '--json').stdout) as Array<{ id: string, status: string }>
    expect(after.filter((e) => e.id === 'home-7').map((e) => e.status)).toEqual(['revoked', 'active'])
    const unknown = placeguard('pki', 'revoke', '--serial', '7f00')
    expect(unknown.status).toBe(1)
    expect(unknown.stderr).toContain('PG_ERR_PKI_UNKNOWN_SERIAL')
    const reconcile = placeguard('pki', 'reconcile', '--json')
    expect(reconcile.status).toBe(0)
    expect(JSON.parse(reconcile.stdout)).toEqual({ activated: [], revoked: [], unknown: [] })
  })

  it('exits non-zero with the error code and the field for bad input', () => {
    const bad = placeguard('pki', 'issue', 'bad#id', '--kind', 'flood', '--site', 'a')
    expect(bad.status).toBe(2)
    expect(bad.stderr).toContain('PG_ERR_INPUT_INVALID: deviceId:')
    const again = placeguard('pki', 'init')
    expect(again.status).toBe(1)
    expect(again.stderr).toContain('PG_ERR_PKI_CA_EXISTS')
    const days = placeguard('pki', 'issue', 'x-1', '--kind', 'flood', '--site', 'a', '--days', 'ten')
    expect(days.status).toBe(2)
    expect(days.stderr).toContain('--days')
    // The PKI library names its options; the CLI speaks of the flags that set them.
    const both = placeguard('pki', 'issue', 'x-2', '--kind', 'flood', '--site', 'a', '--days', '30', '--not-after', '2030-01-01')
    expect(both.status).toBe(2)
    expect(both.stderr).toContain('PG_ERR_INPUT_INVALID: --days: give either --days or --not-before/--not-after, not both')
  })
})

describe('placeguard broker (CLI)', () => {
  it('serves devices and shuts down gracefully on SIGTERM, closing their sessions', async () => {
    expect(placeguard('pki', 'issue', 'home-8', '--kind', 'housing', '--site', 'block-a').status).toBe(0)
    // A random port could be an ephemeral port another test's client holds: the broker would exit on EADDRINUSE.
    const port = await freePort()
    const broker = spawn(process.execPath, ['bin/placeguard.js', '--data-dir', dataDir, 'broker', '--mqtt-port', String(port), '--mqtt-host', '127.0.0.1'], { stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    let errors = ''
    broker.stdout.on('data', (chunk) => { output += chunk })
    broker.stderr.on('data', (chunk) => { errors += chunk })
    const exited = new Promise<number | null>((resolve) => broker.once('exit', resolve))
    await vi.waitFor(() => {
      if (broker.exitCode !== null) throw new Error(`the broker exited (${broker.exitCode}) before listening: ${errors}`)
      expect(output, `stderr: ${errors}`).toContain('broker listening')
    }, { timeout: 10_000 })
    // bin/placeguard.js patched aedes before the command loaded it (broker/aedes-patches.ts).
    expect(output).toMatch(/aedesPatches.*empty-queue-clean/)
    const pki = join(dataDir, 'pki')
    const client = mqtt.connect(`mqtts://127.0.0.1:${port}`, {
      ca: readFileSync(join(pki, 'ca.crt')), cert: readFileSync(join(pki, 'devices', 'home-8.crt')), key: readFileSync(join(pki, 'devices', 'home-8.key')),
      clientId: 'home-8', reconnectPeriod: 0,
    })
    await new Promise<void>((resolve, reject) => { client.once('connect', () => resolve()); client.once('error', reject) })
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()))
    broker.kill('SIGTERM')
    expect(await exited).toBe(0)
    await closed
    expect(output).toContain('SIGTERM: shutting down')
  })
})

describe('placeguard sim (CLI)', () => {
  it('refuses a bad scenario file naming the file, line and field, and a broker URL without TLS', () => {
    const file = join(dataDir, 'bad-scenario.yaml')
    writeFileSync(file, 'name: bad\nincidents:\n  - policy: rate-burst\n    select: { count: 1 }\n    ratePerSec: fast\n')
    const bad = placeguard('sim', '--devices', '2', '--broker', 'mqtts://127.0.0.1:1', '--scenario', file)
    expect(bad.status).toBe(2)
    expect(bad.stderr).toContain(`PG_ERR_SCENARIO_INVALID: scenario ${file}:5: incidents.0.ratePerSec:`)
    const plain = placeguard('sim', '--devices', '2', '--broker', 'mqtt://127.0.0.1:1883')
    expect(plain.status).toBe(2)
    expect(plain.stderr).toContain('--broker: "mqtt://127.0.0.1:1883" is not an mqtts:// URL')
    const second = placeguard('sim', '--devices', '2', '--broker', 'mqtts://127.0.0.1:1,mqtts://127.0.0.1:2', '--broker', 'mqtt://127.0.0.1:1883')
    expect(second.status).toBe(2)
    expect(second.stderr).toContain('--broker: "mqtt://127.0.0.1:1883" is not an mqtts:// URL')
  })

  it('refuses bad LoRaWAN flags naming the flag, before anything starts', () => {
    const cases: Array<[string[], string]> = [
      [['--network', 'lorix'], '--network: "lorix" is not a network server PlaceGuard reads'],
      [['--network', 'chirpstack', '--devices', '0'], '--devices: must be at least 1'],
      [['--network', 'tts', '--devices', 'ten'], '--devices: "ten" is not a whole number'],
      [['--network', 'tts', '--integration', 'ns/1'], '--integration:'],
      [['--network', 'chirpstack', '--site', 'Old Town'], '--site:'],
      [['--integration', 'ns-1'], '--integration: only applies with --network chirpstack|tts'],
      [['--site', 'riverside'], '--site: only applies with --network chirpstack|tts'],
      [['--network', 'chirpstack', '--broker', 'mqtts://127.0.0.1:2'], '--broker: --network publishes through one connection: give one broker URL, not 2'],
    ]
    for (const [flags, message] of cases) {
      const result = placeguard('sim', '--devices', '2', '--broker', 'mqtts://127.0.0.1:1', ...flags)
      expect(result.status, flags.join(' ')).toBe(2)
      expect(result.stderr, flags.join(' ')).toContain(`PG_ERR_INPUT_INVALID: ${message}`)
    }
  })

  it('fails clearly when no device can reach the broker', () => {
    const result = placeguard('sim', '--devices', '2', '--broker', 'mqtts://127.0.0.1:1', '--duration', '1s', '--json')
    expect(result.status).toBe(1)
    expect(result.stderr).toContain('PG_ERR_SIM_BROKER: no device could connect to mqtts://127.0.0.1:1')
  })

  it('takes several broker URLs, repeated or comma-separated, and tries each before giving up', () => {
    const result = placeguard('sim', '--devices', '2', '--broker', 'mqtts://127.0.0.1:1,mqtts://127.0.0.1:2', '--broker', 'mqtts://127.0.0.1:3', '--duration', '1s', '--json')
    expect(result.status).toBe(1)
    expect(result.stderr).toContain('PG_ERR_SIM_BROKER: no device could connect to any of mqtts://127.0.0.1:1, mqtts://127.0.0.1:2, mqtts://127.0.0.1:3')
  })
})
