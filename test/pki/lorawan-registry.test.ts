import { execFileSync } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { identityFromSubjectAltName } from '../../pki/index.ts'
import { PlaceGuardError } from '../../shared/errors.ts'
import { createTestFleet, type TestFleet } from '../helpers/fleet.ts'
import { inputRefusal } from '../helpers/refusal.ts'

/** The PlaceGuardError `work` throws (sync or async), checked for its code and field. */
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

let fleet: TestFleet
beforeAll(async () => {
  fleet = await createTestFleet([{ deviceId: 'flood-1', kind: 'flood', site: 'riverside' }])
})
afterAll(() => fleet.cleanup())

describe('integration certificates (pki issue --role integration)', () => {
  it('binds urn:placeguard:integration:<network>:<id>, verifies against the CA and CRL, and is in the inventory with its network and site', async () => {
    const issued = await fleet.pki.issueIntegration({ integrationId: 'cs-north', network: 'chirpstack', site: 'riverside' })
    const certificate = new X509Certificate(execFileSync('cat', [issued.certificatePath]))
    expect(certificate.subjectAltName).toBe('URI:urn:placeguard:integration:chirpstack:cs-north')
    expect(identityFromSubjectAltName(certificate.subjectAltName)).toEqual({ role: 'integration', integrationId: 'cs-north', network: 'chirpstack' })
    expect(execFileSync('openssl', ['verify', '-CAfile', fleet.paths.caCert, '-CRLfile', fleet.paths.crl, '-crl_check', issued.certificatePath], { encoding: 'utf8' })).toContain('OK')
    const entry = fleet.pki.list().find((e) => e.deviceId === 'cs-north')!
    expect(entry).toMatchObject({ identity: 'certificate', role: 'integration', network: 'chirpstack', site: 'riverside', kind: null, status: 'active' })
  })

  it('renews like a device: same network and site, a new key, the old certificate superseded', async () => {
    await fleet.pki.issueIntegration({ integrationId: 'tts-renew', network: 'tts', site: 'depot' })
    const renewed = await fleet.pki.renew('tts-renew')
    expect(renewed.record).toMatchObject({ role: 'integration', network: 'tts', site: 'depot', status: 'active' })
    expect(new X509Certificate(execFileSync('cat', [renewed.certificatePath])).subjectAltName).toBe('URI:urn:placeguard:integration:tts:tts-renew')
    expect(fleet.pki.list().filter((e) => e.deviceId === 'tts-renew').map((e) => e.status)).toEqual(['superseded', 'active'])
    await fleet.pki.revoke('tts-renew')
    expect(fleet.pki.list().filter((e) => e.deviceId === 'tts-renew').map((e) => e.status)).toEqual(['revoked', 'revoked'])
  })

  it('refuses bad input naming the field, and an id a device holds', async () => {
    await refusal(() => fleet.pki.issueIntegration({ integrationId: 'cs-1', network: 'loriot', site: 'a' }), 'PG_ERR_INPUT_INVALID', 'network')
    await refusal(() => fleet.pki.issueIntegration({ integrationId: 'CS/1', network: 'tts', site: 'a' }), 'PG_ERR_INPUT_INVALID', 'integrationId')
    await refusal(() => fleet.pki.issueIntegration({ integrationId: 'collector-x', network: 'tts', site: 'a' }), 'PG_ERR_INPUT_INVALID', 'integrationId')
    await refusal(() => fleet.pki.issueIntegration({ integrationId: 'tts-1', network: 'tts', site: 'A B' }), 'PG_ERR_INPUT_INVALID', 'site')
    await refusal(() => fleet.pki.issueIntegration({ integrationId: 'flood-1', network: 'tts', site: 'a' }), 'PG_ERR_PKI_DUPLICATE_ID', 'integrationId')
    await refusal(() => fleet.pki.issueIntegration({ integrationId: 'cs-north', network: 'tts', site: 'a' }), 'PG_ERR_PKI_DUPLICATE_ID', 'integrationId')
    // …and the other way round: a device certificate for an integration's id.
    await refusal(() => fleet.pki.issue({ deviceId: 'cs-north', kind: 'flood', site: 'a' }), 'PG_ERR_PKI_DUPLICATE_ID', 'deviceId')
  })
})

describe('the registry of LoRaWAN devices', () => {
  it('adds, lists and removes; the DevEUI is kept lower-case; pki list shows identity lorawan with no serial or validity', () => {
    const added = fleet.pki.addLorawanDevice({ deviceId: 'gauge-7', kind: 'flood', site: 'riverside', devEui: '0004A30B001C0530', integrationId: 'cs-north' })
    expect(added).toMatchObject({ deviceId: 'gauge-7', devEui: '0004a30b001c0530', integrationId: 'cs-north', network: 'chirpstack' })
    expect(fleet.pki.lorawanDevices().map((d) => [d.deviceId, d.kind, d.site, d.devEui, d.integrationId, d.network])).toEqual([
      ['gauge-7', 'flood', 'riverside', '0004a30b001c0530', 'cs-north', 'chirpstack'],
    ])
    const entry = fleet.pki.list().find((e) => e.deviceId === 'gauge-7')!
    expect(entry).toMatchObject({ identity: 'lorawan', role: 'device', devEui: '0004a30b001c0530', integrationId: 'cs-north', effectiveStatus: 'active' })
    expect(entry.serial).toBeUndefined()
    expect(entry.notAfter).toBeUndefined()
    expect(fleet.pki.list().find((e) => e.deviceId === 'flood-1')!.identity).toBe('certificate')
    expect(fleet.pki.removeLorawanDevice('gauge-7').devEui).toBe('0004a30b001c0530')
    expect(fleet.pki.lorawanDevices()).toEqual([])
  })

  it('refuses, naming the field: a malformed DevEUI, an unknown or revoked integration, a DevEUI or id already held, a reserved id', async () => {
    const base = { deviceId: 'meter-1', kind: 'energy', site: 'riverside', devEui: '70b3d57ed0000001', integrationId: 'cs-north' }
    for (const devEui of ['70b3d57ed000000', '70b3d57ed00000011', '70b3d57ed000000g', '70:b3:d5:7e:d0:00:00:01', '']) {
      inputRefusal(() => fleet.pki.addLorawanDevice({ ...base, devEui }), 'devEui')
    }
    expect(inputRefusal(() => fleet.pki.addLorawanDevice({ ...base, integrationId: 'nobody' }), 'integrationId').message).toContain('not in the inventory')
    await fleet.pki.issueIntegration({ integrationId: 'cs-old', network: 'chirpstack', site: 'riverside' })
    await fleet.pki.revoke('cs-old')
    expect(inputRefusal(() => fleet.pki.addLorawanDevice({ ...base, integrationId: 'cs-old' }), 'integrationId').message).toContain('revoked')
    inputRefusal(() => fleet.pki.addLorawanDevice({ ...base, kind: 'gas' }), 'kind')
    inputRefusal(() => fleet.pki.addLorawanDevice({ ...base, site: 'River Side' }), 'site')
    inputRefusal(() => fleet.pki.addLorawanDevice({ ...base, deviceId: 'placeguard-x' }), 'deviceId')

    fleet.pki.addLorawanDevice(base)
    // One radio, one identity: the same DevEUI in another case is the same DevEUI.
    await refusal(() => fleet.pki.addLorawanDevice({ ...base, deviceId: 'meter-2', devEui: '70B3D57ED0000001' }), 'PG_ERR_PKI_DUPLICATE_ID', 'devEui')
    await refusal(() => fleet.pki.addLorawanDevice({ ...base, devEui: '70b3d57ed0000002' }), 'PG_ERR_PKI_DUPLICATE_ID', 'deviceId')
    await refusal(() => fleet.pki.addLorawanDevice({ ...base, deviceId: 'flood-1', devEui: '70b3d57ed0000002' }), 'PG_ERR_PKI_DUPLICATE_ID', 'deviceId')
    await refusal(() => fleet.pki.addLorawanDevice({ ...base, deviceId: 'cs-north', devEui: '70b3d57ed0000002' }), 'PG_ERR_PKI_DUPLICATE_ID', 'deviceId')
    // A certificate for a registered device's id would be a second identity under one name.
    await refusal(() => fleet.pki.issue({ deviceId: 'meter-1', kind: 'energy', site: 'riverside' }), 'PG_ERR_PKI_DUPLICATE_ID', 'deviceId')
    await refusal(() => fleet.pki.issueIntegration({ integrationId: 'meter-1', network: 'tts', site: 'riverside' }), 'PG_ERR_PKI_DUPLICATE_ID', 'integrationId')
    await refusal(() => fleet.pki.removeLorawanDevice('flood-1'), 'PG_ERR_PKI_UNKNOWN_DEVICE', 'deviceId')
    expect(fleet.pki.lorawanDevices().map((d) => d.deviceId)).toEqual(['meter-1'])
  })

  it('is skipped by cert-expiry\'s reading of the inventory: a registered device has nothing to expire', () => {
    const certificates = fleet.pki.list().filter((e) => e.identity === 'certificate' && e.role === 'device').map((e) => e.deviceId)
    expect(certificates).toContain('flood-1')
    expect(certificates).not.toContain('meter-1')
  })
})

describe('inventory migration to integrations', () => {
  it('rebuilds an inventory whose role CHECK predates integrations, keeping rows, key hashes and paths, and adds the registry', async () => {
    const { DatabaseSync } = await import('node:sqlite')
    const { Inventory } = await import('../../pki/inventory.ts')
    const dir = mkdtempSync(join(tmpdir(), 'placeguard-inventory-'))
    try {
      const path = join(dir, 'inventory.db')
      const old = new DatabaseSync(path)
      old.exec(`CREATE TABLE certificates (serial TEXT PRIMARY KEY, device_id TEXT NOT NULL, role TEXT NOT NULL CHECK (role IN ('device', 'collector', 'server')),
        kind TEXT, site TEXT, not_before TEXT NOT NULL, not_after TEXT NOT NULL, key_algorithm TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'active', 'revoked', 'superseded')), issued_at TEXT NOT NULL, revoked_at TEXT, fingerprint TEXT,
        spki_sha256 TEXT, certificate_path TEXT);
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO certificates VALUES ('0b', 'flood-1', 'device', 'flood', 'riverside', '2026-02-01T00:00:00Z', '2027-02-01T00:00:00Z', 'ecdsa-p256', 'active', '2026-02-01T00:00:00Z', NULL, 'ee', 'cc', '/d/flood-1.crt');`)
      old.close()
      const inventory = new Inventory(path)
      expect(inventory.list().map((r) => [r.serial, r.status, r.spkiSha256, r.certificatePath, r.network])).toEqual([['0b', 'active', 'cc', '/d/flood-1.crt', null]])
      inventory.insert({ ...inventory.list()[0]!, serial: '0c', deviceId: 'cs-1', role: 'integration', kind: null, network: 'chirpstack' })
      expect(inventory.activeFor('integration', 'cs-1')?.network).toBe('chirpstack')
      inventory.insertLorawanDevice({ deviceId: 'gauge-1', kind: 'flood', site: 'riverside', devEui: '0004a30b001c0530', integrationId: 'cs-1', addedAt: '2026-03-01T00:00:00Z' })
      expect(inventory.lorawanDevices()).toEqual([{ deviceId: 'gauge-1', kind: 'flood', site: 'riverside', devEui: '0004a30b001c0530', integrationId: 'cs-1', network: 'chirpstack', addedAt: '2026-03-01T00:00:00Z' }])
      inventory.close()
      // Opened again: already migrated, nothing lost.
      const reopened = new Inventory(path)
      expect(reopened.list().map((r) => r.serial)).toEqual(['0b', '0c'])
      expect(reopened.takenIds()).toEqual(new Set(['flood-1', 'cs-1', 'gauge-1']))
      reopened.close()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
