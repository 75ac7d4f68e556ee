/**
 * `placeguard advisories sync|list` and `pki issue --vendor --model`, run
 * as a user would: a mirror directory synced with a refusal named in the
 * summary (exit 1), the list afterwards, and the device's vendor and model
 * in `pki list --json`; `--openpgp-key` checking signatures made by gpg.
 */
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { advisoryFile, writeProvider } from '../helpers/csaf-provider.ts'
import { gpgKeyring } from '../helpers/gpg.ts'

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

  it('checks OpenPGP signatures with the key given after --csaf, and says when none were checked', () => {
    const gpg = gpgKeyring()
    try {
      const fingerprint = gpg.generate('Acme PSIRT <psirt@acme.example>')
      const keyFile = join(dir, 'acme.asc')
      writeFileSync(keyFile, gpg.exportPublic(fingerprint))
      const mirror = join(dir, 'signed-mirror')
      const files = ['ICSA-26-021-01', 'ICSA-26-021-02'].map((id) => advisoryFile({ id, products: [{ vendor: 'Acme Metering', model: 'EM-400', ranges: ['<V5.2.4'] }] }))
      writeProvider(mirror, 'https://csaf.example.org/.well-known/csaf', files)
      gpg.signDetached(fingerprint, join(mirror, 'white', files[0]!.path))
      const unchecked = placeguard('--data-dir', join(dir, 'data-unchecked'), 'advisories', 'sync', '--csaf', mirror)
      expect(unchecked.status).toBe(0)
      expect(unchecked.stdout).toContain('OpenPGP signatures not checked: no key configured for this provider')
      const checked = placeguard('--data-dir', join(dir, 'data-checked'), 'advisories', 'sync', '--csaf', mirror, '--openpgp-key', keyFile)
      expect(checked.status).toBe(1)
      expect(checked.stdout).toMatch(/: 1 new, 0 updated, 0 unchanged, 1 refused/)
      expect(checked.stdout).toContain(`OpenPGP signatures checked with ${fingerprint} (${keyFile})`)
      expect(checked.stdout).toMatch(/refused .*icsa-26-021-02\.json: .*no OpenPGP signature \(\.asc\) is published beside it/)
      const early = placeguard('advisories', 'sync', '--openpgp-key', keyFile, '--csaf', mirror)
      expect(early.status).toBe(2)
      expect(early.stderr).toContain('give --openpgp-key/--openpgp-fingerprint after the --csaf they apply to')
      const notKey = placeguard('advisories', 'sync', '--csaf', mirror, '--openpgp-key', join(mirror, 'provider-metadata.json'))
      expect(notKey.status).toBe(2)
      expect(notKey.stderr).toMatch(/PG_ERR_INPUT_INVALID: --openpgp-key: .*provider-metadata\.json: not an OpenPGP public key/)
      const badPin = placeguard('advisories', 'sync', '--csaf', mirror, '--openpgp-fingerprint', 'ABCD')
      expect(badPin.status).toBe(2)
      expect(badPin.stderr).toContain('PG_ERR_INPUT_INVALID: --openpgp-fingerprint: "ABCD" is not an OpenPGP fingerprint')
    } finally {
      gpg.close()
    }
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
