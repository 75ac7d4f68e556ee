/**
 * The broker's session-ticket secret is the PKI's to make (pki init, and
 * `pki crl --if-due` for a PKI from before it), so a broker given a
 * read-only copy of pki/ finds one (docker-compose).
 */
import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { FleetPki, readOrCreateTicketSecret, TICKET_SECRET_FILE } from '../../pki/index.ts'
import { createTestFleet, type TestFleet } from '../helpers/fleet.ts'

let fleet: TestFleet
beforeAll(async () => { fleet = await createTestFleet() })
afterAll(() => fleet?.cleanup())

describe('the TLS ticket secret', () => {
  it('is made by pki init, private, and kept by pki crl --if-due; a PKI without one gets one there', async () => {
    const file = join(fleet.paths.caCert, '..', TICKET_SECRET_FILE)
    const made = readFileSync(file, 'utf8')
    expect(made).toMatch(/^[0-9a-f]{64}\n$/)
    expect(statSync(file).mode & 0o777).toBe(0o600)
    const pki = new FleetPki(fleet.dataDir)
    await pki.refreshCrlIfDue(7)
    expect(readFileSync(file, 'utf8')).toBe(made) // never replaced: that would cost every device a full handshake
    rmSync(file)
    await pki.refreshCrlIfDue(7)
    expect(readFileSync(file, 'utf8')).toMatch(/^[0-9a-f]{64}\n$/)
    pki.close()
  })

  it('refuses a file that is not 32 bytes of hex, naming it', () => {
    const file = join(fleet.dataDir, 'bad-ticket.key')
    writeFileSync(file, 'not hex\n')
    expect(() => readOrCreateTicketSecret(file)).toThrow(/bad-ticket\.key is not 32 or more bytes of hex/)
  })
})
