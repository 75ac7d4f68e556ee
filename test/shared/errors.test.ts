import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ERROR_CODES } from '../../shared/errors.ts'

describe('error code catalogue', () => {
  it('lists in docs/errors.md exactly the codes the code can raise, with the same meaning', () => {
    const catalogue = readFileSync(join(import.meta.dirname, '..', '..', 'docs', 'errors.md'), 'utf8')
    const rows = [...catalogue.matchAll(/^\| `(PG_ERR_[A-Z_]+)` \| (.+?) \|$/gm)].map((m) => [m[1], m[2]])
    expect(rows.length).toBeGreaterThan(0)
    expect(Object.fromEntries(rows)).toEqual(ERROR_CODES)
  })
})
