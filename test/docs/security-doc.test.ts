/**
 * docs/security.md is the table of attacks tried and their outcomes; it must
 * stay in step with the tests that try them.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'

const ROOT = join(import.meta.dirname, '..', '..')
const doc = readFileSync(join(ROOT, 'docs', 'security.md'), 'utf8')
const cited = [...new Set([...doc.matchAll(/`(test\/[\w./-]+\.test\.ts)`/g)].map((m) => m[1]!))]

describe('docs/security.md', () => {
  it('cites only test files that exist', () => {
    expect(cited.length).toBeGreaterThan(20)
    expect(cited.filter((file) => !existsSync(join(ROOT, file)))).toEqual([])
  })

  it('cites every test of the adversarial test bed', () => {
    const bed = readdirSync(join(ROOT, 'test', 'adversarial')).filter((f) => f.endsWith('.test.ts')).map((f) => `test/adversarial/${f}`)
    expect(bed.filter((file) => !cited.includes(file))).toEqual([])
  })

  it('gives every attack row an outcome and a test', () => {
    const rows = doc.split('\n').filter((line) => line.startsWith('| ') && !line.startsWith('| attack') && !line.startsWith('| fault') && !line.startsWith('| command') && !line.startsWith('|---'))
    for (const row of rows.filter((r) => !r.includes('npm run'))) expect(row, row).toMatch(/`test\/[\w./-]+\.test\.ts`/)
  })
})
