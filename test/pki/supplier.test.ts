import { execFileSync } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { identityFromSubjectAltName, identityUri, parseIdentityUri } from '../../pki/index.ts'
import { PlaceGuardError } from '../../shared/errors.ts'
import { openWindow } from '../../shared/access-windows.ts'
import { createTestFleet, type TestFleet } from '../helpers/fleet.ts'

async function refusal (work: () => unknown, code: string, field: string): Promise<PlaceGuardError> {
  let error: unknown
  try {
    await work()
  } catch (e) {
    error = e
  }
  expect(error).toBeInstanceOf(PlaceGuardError)
  expect((error as PlaceGuardError).code).toBe(code)
  expect((error as PlaceGuardError).field).toBe(field)
  expect((error as PlaceGuardError).message.startsWith(`${field}:`)).toBe(true)
  return error as PlaceGuardError
}

const WEEKLY = [{ reason: 'pump servicing', weekly: { days: ['tue'], start: '02:00', duration: '2h', timeZone: 'Europe/London' } }]
const BASE = { supplierId: 'acme-pumps', kinds: ['flood', 'energy'], sites: ['riverside', 'harbour'], windows: WEEKLY }

let fleet: TestFleet
beforeAll(async () => {
  fleet = await createTestFleet([{ deviceId: 'flood-1', kind: 'flood', site: 'riverside' }])
})
afterAll(() => fleet.cleanup())

describe('supplier identity URIs (issue 17)', () => {
  it('round-trips urn:placeguard:supplier:<id> and refuses a malformed one', () => {
    const identity = { role: 'supplier', supplierId: 'acme-pumps' } as const
    expect(identityUri(identity)).toBe('urn:placeguard:supplier:acme-pumps')
    expect(parseIdentityUri(identityUri(identity))).toEqual(identity)
    for (const uri of ['urn:placeguard:supplier:', 'urn:placeguard:supplier:acme/pumps', 'urn:placeguard:supplier:a:b', 'urn:placeguard:supplier:Acme']) {
      expect(parseIdentityUri(uri), uri).toBeUndefined()
    }
  })
})

describe('supplier certificates (pki issue --role supplier)', () => {
  it('binds the URI, verifies against the CA and CRL, and keeps kinds, sites and windows as given', async () => {
    const issued = await fleet.pki.issueSupplier(BASE)
    const certificate = new X509Certificate(readFileSync(issued.certificatePath))
    expect(certificate.subjectAltName).toBe('URI:urn:placeguard:supplier:acme-pumps')
    expect(identityFromSubjectAltName(certificate.subjectAltName)).toEqual({ role: 'supplier', supplierId: 'acme-pumps' })
    expect(execFileSync('openssl', ['verify', '-CAfile', fleet.paths.caCert, '-CRLfile', fleet.paths.crl, '-crl_check', issued.certificatePath], { encoding: 'utf8' })).toContain('OK')
    expect(issued.record).toMatchObject({ role: 'supplier', deviceId: 'acme-pumps', status: 'active' })
    const grant = fleet.pki.supplierGrant('acme-pumps')!
    expect(grant).toMatchObject({ supplierId: 'acme-pumps', kinds: ['flood', 'energy'], sites: ['riverside', 'harbour'] })
    // Tuesday 03:00 London (GMT in December) is inside 02:00+2h; Tuesday 04:00 is not.
    expect(openWindow(grant.windows, Date.parse('2026-12-01T03:00:00Z'))).toBeDefined()
    expect(openWindow(grant.windows, Date.parse('2026-12-01T04:00:00Z'))).toBeUndefined()
  })

  it('renews with its grant kept, and has none once revoked', async () => {
    await fleet.pki.issueSupplier({ ...BASE, supplierId: 'volt-co', kinds: ['energy'], sites: ['depot'] })
    const renewed = await fleet.pki.renew('volt-co')
    expect(renewed.record).toMatchObject({ role: 'supplier', status: 'active' })
    expect(fleet.pki.supplierGrant('volt-co')?.kinds).toEqual(['energy'])
    await fleet.pki.revoke('volt-co')
    expect(fleet.pki.supplierGrant('volt-co')).toBeUndefined()
    expect(fleet.pki.supplierGrant('nobody')).toBeUndefined()
  })

  it('refuses bad input naming the field, and an id a device holds', async () => {
    const bad = (change: Partial<typeof BASE> | Record<string, unknown>) => () => fleet.pki.issueSupplier({ ...BASE, supplierId: 'sup-x', ...change } as typeof BASE)
    await refusal(bad({ supplierId: 'Acme/1' }), 'PG_ERR_INPUT_INVALID', 'supplierId')
    await refusal(bad({ supplierId: 'placeguard-x' }), 'PG_ERR_INPUT_INVALID', 'supplierId')
    await refusal(bad({ kinds: [] }), 'PG_ERR_INPUT_INVALID', 'kinds')
    await refusal(bad({ kinds: ['gas'] }), 'PG_ERR_INPUT_INVALID', 'kinds')
    await refusal(bad({ sites: [] }), 'PG_ERR_INPUT_INVALID', 'sites')
    await refusal(bad({ sites: ['River Side'] }), 'PG_ERR_INPUT_INVALID', 'sites')
    await refusal(bad({ windows: [] }), 'PG_ERR_INPUT_INVALID', 'windows')
    await refusal(bad({ windows: [{ weekly: { days: ['tue'], start: '25:00', duration: '1h' } }] }), 'PG_ERR_INPUT_INVALID', 'windows[0].weekly.start')
    await refusal(bad({ windows: [{ from: '2026-12-02T00:00:00Z', until: '2026-12-01T00:00:00Z' }] }), 'PG_ERR_INPUT_INVALID', 'windows[0].until')
    await refusal(bad({ windows: [{ from: '2026-12-01T00:00:00Z' }] }), 'PG_ERR_INPUT_INVALID', 'windows[0]')
    await refusal(bad({ supplierId: 'flood-1' }), 'PG_ERR_PKI_DUPLICATE_ID', 'supplierId')
    await refusal(() => fleet.pki.issue({ deviceId: 'acme-pumps', kind: 'flood', site: 'a' }), 'PG_ERR_PKI_DUPLICATE_ID', 'deviceId')
    expect(fleet.pki.supplierGrant('sup-x')).toBeUndefined()
  })
})

describe('inventory migration to suppliers', () => {
  it('rebuilds an inventory whose role CHECK predates suppliers, keeping its rows', async () => {
    const { DatabaseSync } = await import('node:sqlite')
    const { Inventory } = await import('../../pki/inventory.ts')
    const dir = mkdtempSync(join(tmpdir(), 'placeguard-inventory-'))
    try {
      const path = join(dir, 'inventory.db')
      const old = new DatabaseSync(path)
      old.exec(`CREATE TABLE certificates (serial TEXT PRIMARY KEY, device_id TEXT NOT NULL, role TEXT NOT NULL CHECK (role IN ('device', 'collector', 'server', 'integration')),
        kind TEXT, site TEXT, not_before TEXT NOT NULL, not_after TEXT NOT NULL, key_algorithm TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'active', 'revoked', 'superseded')), issued_at TEXT NOT NULL, revoked_at TEXT, fingerprint TEXT,
        spki_sha256 TEXT, certificate_path TEXT, network TEXT CHECK (network IN ('chirpstack', 'tts')));
        INSERT INTO certificates VALUES ('0b', 'cs-1', 'integration', NULL, 'riverside', '2026-02-01T00:00:00Z', '2027-02-01T00:00:00Z', 'ecdsa-p256', 'active', '2026-02-01T00:00:00Z', NULL, 'ee', 'cc', 'cs-1.crt', 'chirpstack');`)
      old.close()
      const inventory = new Inventory(path)
      expect(inventory.list().map((r) => [r.serial, r.role, r.network])).toEqual([['0b', 'integration', 'chirpstack']])
      inventory.insert({ ...inventory.list()[0]!, serial: '0c', deviceId: 'acme', role: 'supplier', network: null })
      expect(inventory.activeFor('supplier', 'acme')?.serial).toBe('0c')
      expect(inventory.takenIds()).toEqual(new Set(['cs-1', 'acme']))
      inventory.close()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
