/**
 * `placeguard pki issue --role integration` and `placeguard devices`, run as
 * a user would: every refusal names the flag at fault (issue 16).
 */
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const dataDir = mkdtempSync(join(tmpdir(), 'placeguard-cli-devices-'))
afterAll(() => rmSync(dataDir, { recursive: true, force: true }))

function placeguard (...args: string[]): { status: number | null, stdout: string, stderr: string } {
  const result = spawnSync(process.execPath, ['bin/placeguard.js', '--data-dir', dataDir, ...args], { encoding: 'utf8' })
  return { status: result.status, stdout: result.stdout, stderr: result.stderr }
}

beforeAll(() => {
  expect(placeguard('pki', 'init').status).toBe(0)
})

const ADD = ['devices', 'add', 'gauge-1', '--kind', 'flood', '--site', 'riverside', '--dev-eui', '0004A30B001C0530', '--integration', 'cs-north']

describe('placeguard pki issue --role integration', () => {
  it('issues an integration certificate, listed with its network', () => {
    const issued = placeguard('pki', 'issue', 'cs-north', '--role', 'integration', '--network', 'chirpstack', '--site', 'riverside')
    expect(issued.stderr).toBe('')
    expect(issued.stdout).toMatch(/^issued integration cs-north \(chirpstack\) serial [0-9a-f]+ until /)
    const entries = JSON.parse(placeguard('pki', 'list', '--json').stdout) as Array<Record<string, unknown>>
    expect(entries.find((e) => e.id === 'cs-north')).toMatchObject({ identity: 'certificate', role: 'integration', network: 'chirpstack', site: 'riverside', status: 'active' })
  })

  it('refuses, naming the flag: no or an unknown network, a kind, an unknown role', () => {
    const cases: Array<[string[], string]> = [
      [['pki', 'issue', 'cs-2', '--role', 'integration', '--site', 'a'], '--network:'],
      [['pki', 'issue', 'cs-2', '--role', 'integration', '--network', 'loriot', '--site', 'a'], '--network:'],
      [['pki', 'issue', 'cs-2', '--role', 'integration', '--network', 'tts', '--kind', 'flood', '--site', 'a'], '--kind:'],
      [['pki', 'issue', 'cs-2', '--role', 'gateway', '--site', 'a'], '--role:'],
      [['pki', 'issue', 'flood-2', '--site', 'a'], '--kind:'],
    ]
    for (const [args, flag] of cases) {
      const refused = placeguard(...args)
      expect(refused.status, args.join(' ')).toBe(2)
      expect(refused.stderr, args.join(' ')).toContain(`PG_ERR_INPUT_INVALID: ${flag}`)
    }
  })
})

describe('placeguard devices', () => {
  it('adds, lists (table and JSON), and removes a LoRaWAN device; pki list shows it as lorawan', () => {
    const added = placeguard(...ADD)
    expect(added.stderr).toBe('')
    expect(added.stdout).toBe('registered gauge-1 (flood, riverside) DevEUI 0004a30b001c0530 via cs-north (chirpstack)\n')
    expect(JSON.parse(placeguard('devices', 'list', '--json').stdout)).toEqual([
      { deviceId: 'gauge-1', kind: 'flood', site: 'riverside', devEui: '0004a30b001c0530', integrationId: 'cs-north', network: 'chirpstack', addedAt: expect.any(String) },
    ])
    expect(placeguard('devices', 'list').stdout).toMatch(/^ID\s+KIND\s+SITE\s+DEVEUI\s+INTEGRATION\s+NETWORK\s+ADDED\ngauge-1\s+flood\s+riverside\s+0004a30b001c0530\s+cs-north\s+chirpstack\s/)
    const listed = JSON.parse(placeguard('pki', 'list', '--json').stdout) as Array<Record<string, unknown>>
    const entry = listed.find((e) => e.id === 'gauge-1')!
    expect(entry).toMatchObject({ identity: 'lorawan', devEui: '0004a30b001c0530', integrationId: 'cs-north' })
    expect(entry).not.toHaveProperty('serial')
    expect(placeguard('pki', 'list').stdout).toMatch(/\ngauge-1\s+lorawan via cs-north\s+flood\s+riverside\s+-\s+-\s+active\n/)
    expect(placeguard('devices', 'remove', 'gauge-1').stdout).toBe('removed gauge-1 (DevEUI 0004a30b001c0530)\n')
    expect(JSON.parse(placeguard('devices', 'list', '--json').stdout)).toEqual([])
  })

  it('refuses each bad registration, naming the flag or field', () => {
    expect(placeguard('pki', 'issue', 'flood-9', '--kind', 'flood', '--site', 'riverside').status).toBe(0)
    expect(placeguard('pki', 'issue', 'cs-gone', '--role', 'integration', '--network', 'chirpstack', '--site', 'riverside').status).toBe(0)
    expect(placeguard('pki', 'revoke', 'cs-gone').status).toBe(0)
    expect(placeguard(...ADD).status).toBe(0)
    const swap = (flag: string, value: string): string[] => ADD.map((arg, i) => ADD[i - 1] === flag ? value : arg)
    const cases: Array<[string[], number, string]> = [
      [swap('--dev-eui', '0004a30b001c053'), 2, 'PG_ERR_INPUT_INVALID: --dev-eui:'],
      [swap('--dev-eui', '0004-a30b-001c-0530'), 2, 'PG_ERR_INPUT_INVALID: --dev-eui:'],
      [swap('--integration', 'nobody'), 2, 'PG_ERR_INPUT_INVALID: --integration: integration "nobody" is not in the inventory'],
      [swap('--integration', 'cs-gone'), 2, 'PG_ERR_INPUT_INVALID: --integration: integration "cs-gone" is revoked'],
      [swap('--kind', 'gas'), 2, 'PG_ERR_INPUT_INVALID: --kind:'],
      [swap('--site', 'River'), 2, 'PG_ERR_INPUT_INVALID: --site:'],
      [['devices', 'add', 'gauge-2', ...ADD.slice(3)], 1, 'PG_ERR_PKI_DUPLICATE_ID: --dev-eui: 0004a30b001c0530 is already registered as "gauge-1"'],
      [swap('--dev-eui', '0004a30b001c0531'), 1, 'PG_ERR_PKI_DUPLICATE_ID: deviceId: "gauge-1" is already a registered LoRaWAN device'],
      [['devices', 'add', 'flood-9', ...ADD.slice(3, 7), '--dev-eui', '0004a30b001c0531', '--integration', 'cs-north'], 1, 'PG_ERR_PKI_DUPLICATE_ID: deviceId: "flood-9" is already a device with an active certificate'],
      [['devices', 'add', 'collector-2', ...ADD.slice(3, 7), '--dev-eui', '0004a30b001c0531', '--integration', 'cs-north'], 2, 'PG_ERR_INPUT_INVALID: deviceId:'],
      [['devices', 'remove', 'flood-9'], 1, 'PG_ERR_PKI_UNKNOWN_DEVICE: deviceId:'],
    ]
    for (const [args, status, message] of cases) {
      const refused = placeguard(...args)
      expect(refused.stderr, args.join(' ')).toContain(message)
      expect(refused.status, args.join(' ')).toBe(status)
    }
    expect((JSON.parse(placeguard('devices', 'list', '--json').stdout) as Array<{ deviceId: string }>).map((d) => d.deviceId)).toEqual(['gauge-1'])
  }, 120_000) // sixteen CLI processes, each starting Node: seconds apiece on a loaded 2-core machine
})
