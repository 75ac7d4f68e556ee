/**
 * `placeguard pki list`, run as a user would (issue 17): a supplier's row
 * shows its grant — kinds, sites, windows as written, and whether one is
 * open now — and a device's row its vendor, model and how many synced
 * advisories name that product, read from `<data-dir>/advisories.db`
 * without creating it when no sync has run.
 */
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { advisoryFile, writeProvider } from '../helpers/csaf-provider.ts'

const dir = mkdtempSync(join(tmpdir(), 'placeguard-cli-pki-list-'))
const dataDir = join(dir, 'data')
afterAll(() => rmSync(dir, { recursive: true, force: true }))

function placeguard (...args: string[]): { status: number | null, stdout: string, stderr: string } {
  const result = spawnSync(process.execPath, ['bin/placeguard.js', '--data-dir', dataDir, ...args], { encoding: 'utf8' })
  return { status: result.status, stdout: result.stdout, stderr: result.stderr }
}

const HOUR_MS = 3_600_000
const now = Date.now()
const OPEN = [{ reason: 'pump servicing', from: new Date(now - HOUR_MS).toISOString(), until: new Date(now + HOUR_MS).toISOString() }]
const CLOSED = [{ from: new Date(now - 3 * HOUR_MS).toISOString(), until: new Date(now - 2 * HOUR_MS).toISOString() }]

interface Row { id: string, role: string, status: string, vendor?: string | null, model?: string | null, advisories?: number | null, grant?: Record<string, unknown> | null }
const listed = (): Row[] => JSON.parse(placeguard('pki', 'list', '--json').stdout) as Row[]

beforeAll(() => {
  expect(placeguard('pki', 'init').status).toBe(0)
  const issue = (...args: string[]) => expect(placeguard('pki', 'issue', ...args).stderr).toBe('')
  issue('acme-pumps', '--role', 'supplier', '--kinds', 'flood,energy', '--sites', 'riverside,harbour', '--windows', JSON.stringify(OPEN))
  issue('night-crew', '--role', 'supplier', '--kinds', 'housing', '--sites', 'depot', '--windows', '[{weekly: {days: [sun], start: "02:00", duration: 2h}}]')
  issue('gone-co', '--role', 'supplier', '--kinds', 'energy', '--sites', 'depot', '--windows', JSON.stringify(CLOSED))
  expect(placeguard('pki', 'revoke', 'gone-co').status).toBe(0)
  issue('energy-1', '--kind', 'energy', '--site', 'depot', '--vendor', 'Acme  Metering', '--model', 'EM-400')
  issue('energy-2', '--kind', 'energy', '--site', 'depot')
  issue('flood-1', '--kind', 'flood', '--site', 'riverside', '--vendor', 'Riverside Sensors', '--model', 'FL 2')
})

describe('placeguard pki list: suppliers\' grants', () => {
  it('shows an active supplier\'s kinds, sites and windows as written, and whether a window is open now; a revoked one has none', () => {
    const rows = listed()
    expect(rows.find((r) => r.id === 'acme-pumps')!.grant).toEqual({ kinds: ['flood', 'energy'], sites: ['riverside', 'harbour'], windows: OPEN, windowOpenNow: true })
    expect(rows.find((r) => r.id === 'night-crew')!.grant).toMatchObject({ windows: [{ weekly: { days: ['sun'], start: '02:00', duration: '2h' } }] })
    expect(rows.find((r) => r.id === 'gone-co')).toMatchObject({ status: 'revoked', grant: null })
    expect(rows.find((r) => r.id === 'energy-1')).not.toHaveProperty('grant')
    const table = placeguard('pki', 'list').stdout
    expect(table).toMatch(/^ID\s+IDENTITY\s+KIND\s+SITE\s+SERIAL\s+NOT AFTER\s+STATUS\n/)
    expect(table).toMatch(/\nSUPPLIER\s+KINDS\s+SITES\s+OPEN NOW\s+WINDOWS\n/)
    expect(table).toMatch(new RegExp(`\\nacme-pumps\\s+flood,energy\\s+riverside,harbour\\s+yes\\s+${OPEN[0]!.from} → ${OPEN[0]!.until}\\n`))
    expect(table).toMatch(/\nnight-crew\s+housing\s+depot\s+(yes|no)\s+sun 02:00 for 2h \(Europe\/London\)\n/)
    expect(table).not.toMatch(/\ngone-co\s+energy\s+depot\s+(yes|no)/)
  })
})

describe('placeguard pki list: devices\' advisories', () => {
  it('shows no count, and creates no advisories.db, before a sync', () => {
    expect(listed().find((r) => r.id === 'energy-1')).toMatchObject({ vendor: 'Acme Metering', model: 'EM-400', advisories: null })
    expect(existsSync(join(dataDir, 'advisories.db'))).toBe(false)
  })

  it('counts the synced advisories naming each device\'s vendor and model as affected', () => {
    const mirror = join(dir, 'mirror')
    writeProvider(mirror, 'https://csaf.example.org/.well-known/csaf', [
      advisoryFile({ id: 'ICSA-26-020-01', cves: ['CVE-2026-2001'], cvss: [8.8], products: [{ vendor: 'Acme Metering', model: 'EM-400', ranges: ['<V5.2.4'] }] }),
      advisoryFile({ id: 'ICSA-26-020-02', cves: ['CVE-2026-2002'], cvss: [6.1], products: [{ vendor: 'acme metering', model: 'EM-400', ranges: ['vers:generic/<3.0.0'] }] }),
      advisoryFile({ id: 'ICSA-26-020-03', cves: ['CVE-2026-2003'], cvss: [5.0], products: [{ vendor: 'Acme Metering', model: 'EM-500', ranges: ['<V1.0'] }] }),
    ])
    expect(placeguard('advisories', 'sync', '--csaf', mirror).status).toBe(0)
    const rows = listed()
    expect(rows.filter((r) => r.role === 'device').map((r) => [r.id, r.advisories])).toEqual([['energy-1', 2], ['energy-2', null], ['flood-1', 0]])
    const table = placeguard('pki', 'list').stdout
    expect(table).toMatch(/\nDEVICE\s+VENDOR\s+MODEL\s+ADVISORIES\nenergy-1\s+Acme Metering\s+EM-400\s+2\nflood-1\s+Riverside Sensors\s+FL 2\s+0\n$/)
  })
})
