/**
 * `placeguard pki issue --role supplier`, run as a user would (issue 17):
 * kinds, sites and windows from flags (inline YAML or a file), and every
 * refusal names the flag or field at fault.
 */
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { FleetPki } from '../../pki/index.ts'

const dataDir = mkdtempSync(join(tmpdir(), 'placeguard-cli-supplier-'))
afterAll(() => rmSync(dataDir, { recursive: true, force: true }))

function placeguard (...args: string[]): { status: number | null, stdout: string, stderr: string } {
  const result = spawnSync(process.execPath, ['bin/placeguard.js', '--data-dir', dataDir, ...args], { encoding: 'utf8' })
  return { status: result.status, stdout: result.stdout, stderr: result.stderr }
}

beforeAll(() => {
  expect(placeguard('pki', 'init').status).toBe(0)
})

const WEEKLY = '[{weekly: {days: [tue, thu], start: "02:00", duration: 2h}}]'

describe('placeguard pki issue --role supplier', () => {
  it('issues a supplier with inline windows, listed by pki list, its grant stored', () => {
    const issued = placeguard('pki', 'issue', 'acme-pumps', '--role', 'supplier', '--kinds', 'flood,energy', '--sites', 'riverside,harbour', '--windows', WEEKLY)
    expect(issued.stderr).toBe('')
    expect(issued.stdout).toMatch(/^issued supplier acme-pumps serial [0-9a-f]+ until /)
    const entries = JSON.parse(placeguard('pki', 'list', '--json').stdout) as Array<Record<string, unknown>>
    expect(entries.find((e) => e.id === 'acme-pumps')).toMatchObject({ identity: 'certificate', role: 'supplier', status: 'active' })
    const grant = new FleetPki(dataDir).supplierGrant('acme-pumps')
    expect(grant).toMatchObject({ kinds: ['flood', 'energy'], sites: ['riverside', 'harbour'], windows: [{ weekly: { days: ['tue', 'thu'], start: '02:00', duration: 7_200_000, timeZone: 'Europe/London' } }] })
  })

  it('reads windows from a YAML file', () => {
    const file = join(dataDir, 'windows.yaml')
    writeFileSync(file, 'windows:\n  - reason: pump replacement\n    from: 2026-12-01T09:00:00Z\n    until: 2026-12-01T17:00:00Z\n')
    expect(placeguard('pki', 'issue', 'volt-co', '--role', 'supplier', '--kinds', 'energy', '--sites', 'depot', '--windows', file).status).toBe(0)
    expect(new FleetPki(dataDir).supplierGrant('volt-co')?.windows).toEqual([{ reason: 'pump replacement', from: '2026-12-01T09:00:00Z', until: '2026-12-01T17:00:00Z' }])
  })

  it('refuses, naming the flag or field', () => {
    const base = ['pki', 'issue', 'sup-2', '--role', 'supplier']
    const cases: Array<[string[], string]> = [
      [[...base, '--sites', 'a', '--windows', WEEKLY], '--kinds:'],
      [[...base, '--kinds', 'flood', '--windows', WEEKLY], '--sites:'],
      [[...base, '--kinds', 'flood', '--sites', 'a'], '--windows:'],
      [[...base, '--kinds', 'gas', '--sites', 'a', '--windows', WEEKLY], 'kinds:'],
      [[...base, '--kinds', 'flood', '--sites', 'A B', '--windows', WEEKLY], 'sites:'],
      [[...base, '--kinds', 'flood', '--sites', 'a', '--windows', '[{weekly: {days: [tue], start: "2am", duration: 2h}}]'], 'windows[0].weekly.start:'],
      [[...base, '--kinds', 'flood', '--sites', 'a', '--windows', join(dataDir, 'missing.yaml')], '--windows:'],
      [[...base, '--kinds', 'flood', '--sites', 'a', '--site', 'a', '--windows', WEEKLY], '--site:'],
      [['pki', 'issue', 'flood-2', '--kind', 'flood', '--site', 'a', '--windows', WEEKLY], '--windows:'],
      [['pki', 'issue', 'flood-2', '--kind', 'flood'], '--site:'],
    ]
    for (const [args, field] of cases) {
      const refused = placeguard(...args)
      expect(refused.status, args.join(' ')).toBe(2)
      expect(refused.stderr, args.join(' ')).toContain(`PG_ERR_INPUT_INVALID: ${field}`)
    }
  })
})
