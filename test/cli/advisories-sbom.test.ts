/**
 * `placeguard advisories sbom add|list|remove`, run as a user would: an
 * SBOM recorded, a bad one refused naming the field (exit 2), the list,
 * and a removal.
 */
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { cycloneDx } from '../advisories/sbom-fixtures.ts'

const dir = mkdtempSync(join(tmpdir(), 'placeguard-cli-sbom-'))
const dataDir = join(dir, 'data')
afterAll(() => rmSync(dir, { recursive: true, force: true }))

function placeguard (...args: string[]): { status: number | null, stdout: string, stderr: string } {
  const result = spawnSync(process.execPath, ['bin/placeguard.js', '--data-dir', dataDir, ...args], { encoding: 'utf8' })
  return { status: result.status, stdout: result.stdout, stderr: result.stderr }
}

describe('placeguard advisories sbom (CLI)', () => {
  it('records an SBOM per firmware, refuses a bad one naming the field, lists and removes', () => {
    const good = join(dir, 'gw7-2.1.0.cdx.json')
    writeFileSync(good, JSON.stringify(cycloneDx('2.1.0', '3.5.1')))
    const target = ['--vendor', 'Northgate Systems', '--model', 'GW-7', '--firmware', '2.1.0']
    const add = placeguard('advisories', 'sbom', 'add', ...target, good)
    expect(add).toMatchObject({ status: 0, stdout: 'Northgate Systems GW-7 2.1.0: recorded, CycloneDX 1.5, 5 components\n' })

    const bad = join(dir, 'bad.cdx.json')
    const document = cycloneDx('2.2.0', '3.5.2') as { components: Array<Record<string, unknown>> }
    delete document.components[2]!.version
    writeFileSync(bad, JSON.stringify(document))
    const refused = placeguard('advisories', 'sbom', 'add', '--vendor', 'Northgate Systems', '--model', 'GW-7', '--firmware', '2.2.0', bad)
    expect(refused.status).toBe(2)
    expect(refused.stderr).toContain('PG_ERR_INPUT_INVALID: ')
    expect(refused.stderr).toContain('bad.cdx.json: components[2].version: is missing for "mqtt"')
    expect(placeguard('advisories', 'sbom', 'add', '--vendor', 'Northgate Systems', '--model', 'GW-7', good).stderr).toContain('--firmware: give the firmware version')

    expect(placeguard('advisories', 'sbom', 'list').stdout).toMatch(/^VENDOR\s+MODEL\s+FIRMWARE\s+FORMAT\s+COMPONENTS\s+SOURCE\nNorthgate Systems\s+GW-7\s+2\.1\.0\s+cyclonedx 1\.5\s+5\s+\S+gw7-2\.1\.0\.cdx\.json\n$/)
    expect(placeguard('advisories', 'sbom', 'remove', ...target)).toMatchObject({ status: 0, stdout: 'Northgate Systems GW-7 2.1.0: SBOM removed\n' })
    expect(JSON.parse(placeguard('advisories', 'sbom', 'list', '--json').stdout)).toEqual([])

    // What decides a firmware's exposure is an operator's action: in the audit trail, refusals too.
    const trail = JSON.parse(placeguard('audit-trail', 'list', '--json').stdout) as Array<{ action: string, subject: string | null, detail: Record<string, unknown> }>
    expect(trail.filter((e) => e.action.startsWith('advisories.sbom.')).map((e) => `${e.action} ${e.subject} ${String(e.detail.outcome)}`)).toEqual([
      'advisories.sbom.add Northgate Systems / GW-7 / 2.1.0 requested', 'advisories.sbom.add Northgate Systems / GW-7 / 2.1.0 done',
      'advisories.sbom.add Northgate Systems / GW-7 / 2.2.0 requested', 'advisories.sbom.add Northgate Systems / GW-7 / 2.2.0 refused',
      'advisories.sbom.add Northgate Systems / GW-7 / ? requested', 'advisories.sbom.add Northgate Systems / GW-7 / ? refused',
      'advisories.sbom.remove Northgate Systems / GW-7 / 2.1.0 requested', 'advisories.sbom.remove Northgate Systems / GW-7 / 2.1.0 done',
    ])
    expect(trail.find((e) => e.action === 'advisories.sbom.add' && e.detail.outcome === 'done')!.detail).toMatchObject({ result: 'new', components: 5 })
    expect(placeguard('audit-trail', 'verify').status).toBe(0)
  })
})
