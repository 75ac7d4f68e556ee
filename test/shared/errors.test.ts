import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ERROR_CATALOGUE, PlaceGuardError } from '../../shared/errors.ts'

describe('error code catalogue', () => {
  it('lists in docs/errors.md exactly the codes the code can raise, with the same meaning, HTTP status and exit status', () => {
    const catalogue = readFileSync(join(import.meta.dirname, '..', '..', 'docs', 'errors.md'), 'utf8')
    const rows = [...catalogue.matchAll(/^\| `(PG_ERR_[A-Z_]+)` \| (.+?) \| (\d{3}) \| ([12]) \|$/gm)]
      .map((m) => [m[1], { meaning: m[2], httpStatus: Number(m[3]), exitCode: Number(m[4]) }])
    expect(rows.length).toBeGreaterThan(0)
    expect(Object.fromEntries(rows)).toEqual(ERROR_CATALOGUE)
  })

  it('gives every error the HTTP status and exit status of its code', () => {
    expect(new PlaceGuardError('PG_ERR_INPUT_INVALID', 'cursor: bad')).toMatchObject({ statusCode: 400, exitCode: 2 })
    expect(new PlaceGuardError('PG_ERR_API_CONFLICT', 'already resolved')).toMatchObject({ statusCode: 409, exitCode: 1 })
    expect(new PlaceGuardError('PG_ERR_SPOOL_FULL', 'full')).toMatchObject({ statusCode: 503, exitCode: 1 })
  })
})
