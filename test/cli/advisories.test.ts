/**
 * `placeguard advisories sync|list` and `pki issue --vendor --model`, run
 * as a user would: a mirror directory synced with a refusal named in the
 * summary (exit 1), the list afterwards, and the device's vendor and model
 * in `pki list --json`.
 */
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { advisoryFile, writeProvider } from '../helpers/csaf-provider.ts'

const dir = mkdtempSync(join(tmpdir(), 'placeguard-cli-advisories-'))
const dataDir = join(dir, 'data')
afterAll(() => rmSync(dir, { recursive: true, force: true }))

function placeguard (...args: string[]): { status: number | null, stdout: string, stderr: string } {
  const result = spawnSync(process.execPath, ['bin/placeguard.js', '--data-dir', dataDir, ...args], { encoding: 'utf8' })
  return { status: result.status, stdout: result.stdout, stderr: result.stderr }
}

describe('placeguard advisories (CLI)', () => {
  it('syncs a mirror, summarises new, updated, unchanged and refused, and lists what it kept', () => {
    const mirror = join(dir, 'mirror')
    const meter = (id: string) => advisoryFile({ id, cves: ['CVE-2026-2001'], cvss: [8.8], products: [{ vendor: 'Acme Metering', model: 'EM-400', ranges: ['<V5.2.4'] }] })
    writeProvider(mirror, 'https://csaf.example.org/.well-known/csaf', [meter('ICSA-26-020-01'), meter('ICSA-26-020-02')], { tamper: ['2026/icsa-26-020-02.json'] })
    const sync = placeguard('advisories', 'sync', '--csaf', mirror)
    expect(sync.status).toBe(1)
    expect(sync.stdout).toMatch(/: 1 new, 0 updated, 0 unchanged, 1 refused/)
    expect(sync.stdout).toMatch(/refused .*icsa-26-020-02\.json: .*hash mismatch/)
    const list = JSON.parse(placeguard('advisories', 'list', '--json').stdout) as Array<{ id: string, cvss: number }>
    expect(list.map((a) => [a.id, a.cvss])).toEqual([['ICSA-26-020-01', 8.8]])
    expect(placeguard('advisories', 'list').stdout).toMatch(/^ID\s+CVSS\s+CVES\s+PRODUCTS\s+TITLE\nICSA-26-020-01\s+8\.8\s+CVE-2026-2001\s+1\s+Acme Metering EM-400\n$/)
    const none = placeguard('advisories', 'sync')
    expect(none.status).toBe(2)
    expect(none.stderr).toContain('PG_ERR_INPUT_INVALID: --csaf: give at least one')
  })

  it('records a device\'s vendor and model at issue and at devices add, and shows them in pki list --json', () => {
    expect(placeguard('pki', 'init').status).toBe(0)
    expect(placeguard('pki', 'issue', 'energy-1', '--kind', 'energy', '--site', 'depot', '--vendor', 'Acme  Metering', '--model', 'EM-400').status).toBe(0)
    expect(placeguard('pki', 'issue', 'energy-2', '--kind', 'energy', '--site', 'depot').status).toBe(0)
    const half = placeguard('pki', 'issue', 'energy-3', '--kind', 'energy', '--site', 'depot', '--vendor', 'Acme')
    expect(half.status).toBe(2)
    expect(half.stderr).toContain('--model: give the model with the vendor')
    expect(placeguard('pki', 'issue', 'cs-1', '--role', 'integration', '--network', 'chirpstack', '--site', 'depot').status).toBe(0)
    expect(placeguard('devices', 'add', 'gauge-1', '--kind', 'flood', '--site', 'depot', '--dev-eui', '0004a30b001c0531', '--integration', 'cs-1', '--vendor', 'Riverside Sensors', '--model', 'FL 2').status).toBe(0)
    const entries = JSON.parse(placeguard('pki', 'list', '--json').stdout) as Array<{ id: string, vendor?: string | null, model?: string | null }>
    expect(entries.map((e) => [e.id, e.vendor, e.model])).toEqual([
      ['energy-1', 'Acme Metering', 'EM-400'], ['energy-2', null, null], ['cs-1', undefined, undefined], ['gauge-1', 'Riverside Sensors', 'FL 2'],
    ])
  })
})
