/**
 * `placeguard pki issue-batch`, run as an operator would: a manifest as a
 * spreadsheet exports it (BOM, CRLF, a quoted vendor holding a comma) into
 * one archive; a bad line refused with its line number before anything is
 * issued; the batch in the audit trail.
 */
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const dir = mkdtempSync(join(tmpdir(), 'placeguard-cli-issue-batch-'))
const dataDir = join(dir, 'data')
afterAll(() => rmSync(dir, { recursive: true, force: true }))

function placeguard (...args: string[]): { status: number | null, stdout: string, stderr: string } {
  const result = spawnSync(process.execPath, ['bin/placeguard.js', '--data-dir', dataDir, ...args], {
    encoding: 'utf8', env: { ...process.env, PLACEGUARD_DATABASE_URL: '', PLACEGUARD_REDIS_URL: '' },
  })
  return { status: result.status, stdout: result.stdout, stderr: result.stderr }
}

function manifest (name: string, text: string): string {
  const path = join(dir, name)
  writeFileSync(path, text)
  return path
}

interface Row { id: string, status: string, kind: string, site: string, vendor?: string | null, model?: string | null }
const devices = (): Row[] => (JSON.parse(placeguard('pki', 'list', '--json').stdout) as Row[]).filter((row) => row.kind !== null && row.kind !== undefined)

beforeAll(() => {
  expect(placeguard('pki', 'init').status).toBe(0)
})

describe('pki issue-batch', () => {
  it('issues every device of a spreadsheet\'s manifest into one archive, vendor and model kept', () => {
    const lines = ['DeviceId,Kind,Site,Vendor,Model', 'meter-1,energy,depot,"Acme, Metering",EM-400', 'meter-2,energy,depot,"Acme, Metering",EM-400', '', 'flood-9,flood,riverside,,']
    const path = manifest('march.csv', `\uFEFF${lines.join('\r\n')}\r\n`)
    const archive = join(dir, 'out', 'march.tar')
    const run = placeguard('pki', 'issue-batch', path, '--archive', archive, '--days', '30', '--json')
    expect(run.stderr).toBe('')
    expect(run.status).toBe(0)
    const printed = JSON.parse(run.stdout) as { issued: number, archive: string, devices: Array<{ deviceId: string, serial: string, certificatePath: string }> }
    expect(printed.issued).toBe(3)
    expect(printed.archive).toBe(archive)
    expect(printed.devices.map((device) => device.certificatePath)).toEqual([`${archive}#meter-1.crt`, `${archive}#meter-2.crt`, `${archive}#flood-9.crt`])
    const listing = spawnSync('tar', ['-tf', archive], { encoding: 'utf8' }).stdout.trim().split('\n').sort()
    expect(listing).toEqual(['ca.crt', 'flood-9.crt', 'flood-9.key', 'meter-1.crt', 'meter-1.key', 'meter-2.crt', 'meter-2.key'])
    const rows = new Map(devices().map((row) => [row.id, row]))
    expect(rows.get('meter-1')).toMatchObject({ status: 'active', kind: 'energy', site: 'depot', vendor: 'Acme, Metering', model: 'EM-400' })
    expect(rows.get('flood-9')).toMatchObject({ status: 'active', kind: 'flood', site: 'riverside', vendor: null })

    // Recorded as one action: the manifest and flags first, the count and archive with the outcome.
    const trail = JSON.parse(placeguard('audit-trail', 'list', '--json').stdout) as Array<{ action: string, detail: Record<string, unknown> }>
    const batch = trail.filter((entry) => entry.action === 'pki.issue-batch')
    expect(batch.map((entry) => entry.detail.outcome)).toEqual(['requested', 'done'])
    expect(batch[0]!.detail).toMatchObject({ manifest: path, archive, days: 30 })
    expect(batch[1]!.detail).toMatchObject({ issued: 3, archive })
  })

  it('refuses a bad line with its number and issues nothing of that manifest', () => {
    const before = devices().length
    const cases: Array<[string, RegExp]> = [
      ['deviceId,kind,site\nok-1,flood,a\nok-2,floods,a\n', /line 3: kind: /],
      ['deviceId,kind,site\nok-1,flood,a\nBad Id,flood,a\n', /line 3: deviceId: "Bad Id"/],
      ['deviceId,kind,site\nok-1,flood,a\nok-1,flood,b\n', /line 3: "ok-1" is listed again \(line 2\)/],
      ['deviceId,kind,site,vendor,model\nok-1,flood,a,Acme,\n', /line 2: model: give the model with the vendor/],
      ['deviceId,kind,site\nok-1,flood,a,extra\n', /line 2: 4 fields where the header has 3/],
      ['deviceId,kind,place\nok-1,flood,a\n', /line 1: "place" is not a column/],
      ['deviceId,kind,site\nok-1,flood,"a\n', /line 2: a quoted field is not closed/],
      ['deviceId,kind,site\n', /lists no device/],
      ['deviceId,kind,site\nmeter-1,energy,depot\n', /"meter-1" is already/],
    ]
    for (const [i, [text, message]] of cases.entries()) {
      const archive = join(dir, `refused-${i}.tar`)
      const run = placeguard('pki', 'issue-batch', manifest(`bad-${i}.csv`, text), '--archive', archive)
      expect(run.status, text).not.toBe(0)
      expect(run.stderr, text).toMatch(message)
      expect(existsSync(archive), text).toBe(false)
    }
    expect(devices()).toHaveLength(before)
  })

  it('refuses flags that cannot go together, and an archive that is not .tar', () => {
    const path = manifest('flags.csv', 'deviceId,kind,site\nflags-1,flood,a\n')
    expect(placeguard('pki', 'issue-batch', path, '--archive', join(dir, 'x.tar'), '--out', dir).stderr).toMatch(/--out: an archive holds the files itself/)
    expect(placeguard('pki', 'issue-batch', path, '--archive', join(dir, 'x.zip')).stderr).toMatch(/--archive: .*does not end in \.tar/)
    expect(placeguard('pki', 'issue-batch', join(dir, 'missing.csv')).stderr).toMatch(/manifest: cannot read/)
    // Without --archive, the files as `pki issue` writes them.
    const run = placeguard('pki', 'issue-batch', path, '--out', join(dir, 'files'))
    expect(run.status).toBe(0)
    expect(run.stdout).toMatch(/^issued 1 device in [\d.]+ s into .*files\n$/)
    expect(existsSync(join(dir, 'files', 'flags-1.key'))).toBe(true)
  })

  it('ends quietly when its reader stops reading: `pki list --json | head`', async () => {
    const lines = ['deviceId,kind,site', ...Array.from({ length: 400 }, (_, i) => `piped-${i},housing,tower`)]
    expect(placeguard('pki', 'issue-batch', manifest('piped.csv', `${lines.join('\n')}\n`), '--archive', join(dir, 'piped.tar')).status).toBe(0)
    // Over 64 KiB of JSON: more than the pipe holds, so the command is still writing when its reader goes.
    const child = spawn(process.execPath, ['bin/placeguard.js', '--data-dir', dataDir, 'pki', 'list', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stderr = ''
    child.stderr.on('data', (chunk) => { stderr += chunk })
    child.stdout.once('data', () => child.stdout.destroy())
    const status = await new Promise<number | null>((resolve) => child.once('close', resolve))
    expect(stderr).toBe('')
    expect(status).toBe(141)
  })
})
