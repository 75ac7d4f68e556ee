import { readFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readCrl } from '../../pki/index.ts'
import { createTestFleet, type TestFleet } from '../helpers/fleet.ts'

let fleet: TestFleet

beforeAll(async () => {
  fleet = await createTestFleet([{ deviceId: 'crl-1', kind: 'energy', site: 'crl-site' }])
})

afterAll(() => fleet?.cleanup())

const current = () => readCrl(readFileSync(fleet.paths.crl, 'utf8'), readFileSync(fleet.paths.caCert, 'utf8'))

describe('readCrl', () => {
  it('reports the cRLNumber as a bigint and thisUpdate, both growing with each CRL the CA signs', async () => {
    const first = await current()
    expect(typeof first.crlNumber).toBe('bigint')
    expect(first.thisUpdate).toBeInstanceOf(Date)
    await fleet.pki.revoke('crl-1')
    const second = await current()
    expect(second.crlNumber! > first.crlNumber!).toBe(true)
    expect(second.thisUpdate.getTime()).toBeGreaterThanOrEqual(first.thisUpdate.getTime())
    expect(second.revokedSerials.size).toBe(1)
  })
})
