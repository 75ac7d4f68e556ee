import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { X509Certificate } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { FleetPki } from '../../pki/index.ts'
import { PlaceGuardError } from '../../shared/errors.ts'
import { createTestFleet, type TestFleet } from '../helpers/fleet.ts'

let fleet: TestFleet

beforeAll(async () => { fleet = await createTestFleet() })
afterAll(() => fleet?.cleanup())

function openssl (...args: string[]): string {
  return execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
}

async function expectError (work: Promise<unknown>, code: string, field?: string): Promise<PlaceGuardError> {
  const error = await work.then(() => undefined, (e: unknown) => e)
  expect(error).toBeInstanceOf(PlaceGuardError)
  expect((error as PlaceGuardError).code).toBe(code)
  if (field) expect((error as PlaceGuardError).field).toBe(field)
  return error as PlaceGuardError
}

describe('pki init', () => {
  it('writes the CA, server, collector and CRL, private keys 0600', () => {
    const p = fleet.paths
    for (const file of [p.caCert, p.caKey, p.serverCert, p.serverKey, p.collectorCert, p.collectorKey, p.crl]) expect(existsSync(file), file).toBe(true)
    for (const key of [p.caKey, p.serverKey, p.collectorKey]) expect(statSync(key).mode & 0o777).toBe(0o600)
    expect(openssl('verify', '-CAfile', p.caCert, p.serverCert)).toContain('OK')
    const server = new X509Certificate(readFileSync(p.serverCert))
    expect(server.subjectAltName).toContain('DNS:localhost')
    expect(server.subjectAltName).toContain('IP Address:127.0.0.1')
    expect(new X509Certificate(readFileSync(p.collectorCert)).subjectAltName).toBe('URI:urn:placeguard:collector:collector')
    expect(openssl('crl', '-in', p.crl, '-noout', '-text')).toContain('No Revoked Certificates')
  })

  it('refuses to overwrite an existing CA', async () => {
    const before = readFileSync(fleet.paths.caKey, 'utf8')
    await expectError(new FleetPki(fleet.dataDir).init(), 'PG_ERR_PKI_CA_EXISTS')
    expect(readFileSync(fleet.paths.caKey, 'utf8')).toBe(before)
  })
})

describe('pki issue', () => {
  it('issues an ECDSA P-256 device certificate binding id, kind and site, verifiable by openssl with the CRL', async () => {
    const issued = await fleet.pki.issue({ deviceId: 'flood-101', kind: 'flood', site: 'riverside' })
    const text = openssl('x509', '-in', issued.certificatePath, '-noout', '-text')
    expect(text).toContain('Subject: CN = flood-101')
    expect(text).toContain('URI:urn:placeguard:device:riverside:flood:flood-101')
    expect(text).toContain('TLS Web Client Authentication')
    expect(text).toContain('prime256v1')
    expect(statSync(issued.privateKeyPath!).mode & 0o777).toBe(0o600)
    expect(openssl('verify', '-CAfile', fleet.paths.caCert, '-crl_check', '-CRLfile', fleet.paths.crl, issued.certificatePath)).toContain('OK')
    expect(issued.record).toMatchObject({ deviceId: 'flood-101', kind: 'flood', site: 'riverside', status: 'active', keyAlgorithm: 'ecdsa-p256' })
    const days = (Date.parse(issued.record.notAfter) - Date.now()) / 86_400_000
    expect(days).toBeGreaterThan(364)
    expect(days).toBeLessThan(366)
  })

  it('issues RSA-2048 on request, with an explicit validity window', async () => {
    const issued = await fleet.pki.issue({
      deviceId: 'meter-101', kind: 'energy', site: 'depot', keyAlgorithm: 'rsa-2048',
      notBefore: '2026-01-01T00:00:00Z', notAfter: '2027-01-01T00:00:00Z',
    })
    const text = openssl('x509', '-in', issued.certificatePath, '-noout', '-text')
    expect(text).toContain('Public-Key: (2048 bit)')
    expect(text).toContain('Not Before: Jan  1 00:00:00 2026 GMT')
    expect(issued.record.keyAlgorithm).toBe('rsa-2048')
  })

  it('writes to --out when given, and records the device in the inventory', async () => {
    const out = mkdtempSync(join(tmpdir(), 'placeguard-out-'))
    try {
      await fleet.pki.issue({ deviceId: 'home-101', kind: 'housing', site: 'block-a', outDir: out })
      expect(readdirSync(out).sort()).toEqual(['home-101.crt', 'home-101.key'])
      expect(fleet.pki.list().find((e) => e.deviceId === 'home-101')).toMatchObject({ kind: 'housing', site: 'block-a', effectiveStatus: 'active' })
    } finally {
      rmSync(out, { recursive: true, force: true })
    }
  })

  // One case a field, to show issue refuses before it writes; which values each rule refuses is tested beside the rule.
  it.each([
    [{ deviceId: 'dev+1', kind: 'flood', site: 'a' }, 'deviceId'],
    [{ deviceId: 'ok-1', kind: 'lava', site: 'a' }, 'kind'],
    [{ deviceId: 'ok-1', kind: 'flood', site: 'Site A' }, 'site'],
    [{ deviceId: 'ok-1', kind: 'flood', site: 'a', days: 0 }, 'days'],
    [{ deviceId: 'ok-1', kind: 'flood', site: 'a', notBefore: '2027-01-01', notAfter: '2026-01-01' }, 'notAfter'],
    [{ deviceId: 'ok-1', kind: 'flood', site: 'a', notBefore: 'yesterday', notAfter: '2027-01-01' }, 'notBefore'],
    [{ deviceId: 'ok-1', kind: 'flood', site: 'a', notAfter: '2999-01-01' }, 'notAfter'], // past the CA's own notAfter
  ])('refuses %o naming %s, and writes nothing', async (request, field) => {
    const before = fleet.pki.list().length
    const error = await expectError(fleet.pki.issue(request), 'PG_ERR_INPUT_INVALID', field)
    expect(error.message.startsWith(`${field}:`)).toBe(true)
    expect(fleet.pki.list().length).toBe(before)
    expect(existsSync(join(fleet.paths.devicesDir, `${request.deviceId}.key`))).toBe(false)
  })

  it('refuses a second active certificate for the same id', async () => {
    await fleet.pki.issue({ deviceId: 'dup-1', kind: 'flood', site: 'a' })
    const cert = readFileSync(join(fleet.paths.devicesDir, 'dup-1.crt'), 'utf8')
    await expectError(fleet.pki.issue({ deviceId: 'dup-1', kind: 'flood', site: 'a' }), 'PG_ERR_PKI_DUPLICATE_ID', 'deviceId')
    expect(readFileSync(join(fleet.paths.devicesDir, 'dup-1.crt'), 'utf8')).toBe(cert)
  })

  it('refuses to issue without a CA', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'placeguard-empty-'))
    try {
      await expectError(new FleetPki(empty).issue({ deviceId: 'a', kind: 'flood', site: 'a' }), 'PG_ERR_PKI_NO_CA')
      expect(existsSync(join(empty, 'pki', 'devices'))).toBe(false)
    } finally {
      rmSync(empty, { recursive: true, force: true })
    }
  })

  it('issues a batch large enough to use worker threads, every certificate distinct and valid', async () => {
    const requests = Array.from({ length: 600 }, (_, i) => ({ deviceId: `bulk-${i}`, kind: 'housing', site: `block-${i % 3}` }))
    let progress = 0
    const issued = await fleet.pki.issueMany(requests, (done) => { progress = done })
    expect(progress).toBe(600)
    expect(new Set(issued.map((d) => d.record.serial)).size).toBe(600)
    const last = issued[599]!
    expect(openssl('verify', '-CAfile', fleet.paths.caCert, last.certificatePath)).toContain('OK')
    expect(new X509Certificate(readFileSync(last.certificatePath)).subjectAltName).toBe('URI:urn:placeguard:device:block-2:housing:bulk-599')
  })

  it('keeps the rest of a batch in service, files and all, when one of it is revoked while it is signed', async () => {
    const requests = Array.from({ length: 600 }, (_, i) => ({ deviceId: `racing-${i}`, kind: 'flood', site: 'a' }))
    const other = new FleetPki(fleet.dataDir) // another operator's process on the same inventory
    let revoked: Promise<unknown> | undefined
    const issuing = fleet.pki.issueMany(requests, () => { revoked ??= other.revoke('racing-5') })
    await expectError(issuing, 'PG_ERR_PKI_UNKNOWN_DEVICE', 'deviceId')
    await revoked
    other.close()
    const status = new Map(fleet.pki.list().map((entry) => [entry.deviceId, entry.status]))
    expect(status.get('racing-5')).toBe('revoked')
    expect(existsSync(join(fleet.paths.devicesDir, 'racing-5.crt'))).toBe(false)
    for (const id of ['racing-0', 'racing-599']) {
      expect(status.get(id)).toBe('active')
      expect(openssl('verify', '-CAfile', fleet.paths.caCert, join(fleet.paths.devicesDir, `${id}.crt`))).toContain('OK')
      expect(existsSync(join(fleet.paths.devicesDir, `${id}.key`))).toBe(true)
    }
  })

  it('issues none of a batch when one id is already active', async () => {
    const before = fleet.pki.list().length
    await expectError(fleet.pki.issueMany([{ deviceId: 'fresh-1', kind: 'flood', site: 'a' }, { deviceId: 'flood-101', kind: 'flood', site: 'a' }]), 'PG_ERR_PKI_DUPLICATE_ID')
    expect(fleet.pki.list().length).toBe(before)
    expect(existsSync(join(fleet.paths.devicesDir, 'fresh-1.crt'))).toBe(false)
  })
})

describe('pki sign', () => {
  it('signs a CSR made by openssl; the key never leaves the device and the id comes from the CN', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'placeguard-csr-'))
    try {
      openssl('req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=own-key-1',
        '-keyout', join(dir, 'device.key'), '-out', join(dir, 'device.csr'))
      const issued = await fleet.pki.signCsr(readFileSync(join(dir, 'device.csr'), 'utf8'), { kind: 'energy', site: 'depot' })
      expect(issued.privateKeyPath).toBeUndefined()
      expect(existsSync(join(fleet.paths.devicesDir, 'own-key-1.key'))).toBe(false)
      expect(issued.record).toMatchObject({ deviceId: 'own-key-1', kind: 'energy', keyAlgorithm: 'ecdsa-p256' })
      // The certificate carries the device's own public key.
      const certKey = openssl('x509', '-in', issued.certificatePath, '-noout', '-pubkey')
      const deviceKey = openssl('pkey', '-in', join(dir, 'device.key'), '-pubout')
      expect(certKey).toBe(deviceKey)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('refuses a CSR whose CN is not a valid id, and a tampered CSR', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'placeguard-csr-'))
    try {
      openssl('req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=Bad_Device#1',
        '-keyout', join(dir, 'bad.key'), '-out', join(dir, 'bad.csr'))
      await expectError(fleet.pki.signCsr(readFileSync(join(dir, 'bad.csr'), 'utf8'), { kind: 'flood', site: 'a' }), 'PG_ERR_INPUT_INVALID', 'csr CN')
      openssl('req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=good-1',
        '-keyout', join(dir, 'good.key'), '-out', join(dir, 'good.csr'), '-outform', 'DER')
      const der = readFileSync(join(dir, 'good.csr'))
      der.writeUInt8(der.readUInt8(der.length - 5) ^ 0xff, der.length - 5) // corrupt the signature
      writeFileSync(join(dir, 'tampered.csr'), `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`)
      await expectError(fleet.pki.signCsr(readFileSync(join(dir, 'tampered.csr'), 'utf8'), { kind: 'flood', site: 'a' }), 'PG_ERR_PKI_CSR_INVALID', 'csr')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('pki revoke', () => {
  it('marks the device revoked and lists its serial in a freshly signed CRL', async () => {
    const issued = await fleet.pki.issue({ deviceId: 'gone-1', kind: 'flood', site: 'a' })
    await fleet.pki.revoke('gone-1')
    const crl = openssl('crl', '-in', fleet.paths.crl, '-noout', '-text', '-CAfile', fleet.paths.caCert)
    expect(crl.toLowerCase()).toContain(`serial number: ${issued.record.serial}`)
    const verify = spawnSync('openssl', ['verify', '-CAfile', fleet.paths.caCert, '-crl_check', '-CRLfile', fleet.paths.crl, issued.certificatePath], { encoding: 'utf8' })
    expect(verify.status).not.toBe(0)
    expect(verify.stdout + verify.stderr).toContain('certificate revoked')
    expect(fleet.pki.list().find((e) => e.deviceId === 'gone-1')?.effectiveStatus).toBe('revoked')
    // A revoked id may be issued again (a replaced device keeps its name).
    await fleet.pki.issue({ deviceId: 'gone-1', kind: 'flood', site: 'a' })
  })

  it('refuses an unknown device', async () => {
    await expectError(fleet.pki.revoke('never-issued'), 'PG_ERR_PKI_UNKNOWN_DEVICE', 'deviceId')
  })
})

describe('CRL freshness', () => {
  it('re-signs the CRL only when it lapses within the window, or cannot be read', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'placeguard-crl-'))
    const clock = { ms: Date.parse('2026-11-23T12:00:00Z'), now: () => clock.ms }
    const pki = new FleetPki(dir, { clock, crlValidityDays: 10 })
    try {
      await pki.init()
      const first = await pki.refreshCrlIfDue(7)
      expect(first).toEqual({ refreshed: false, nextUpdate: new Date('2026-12-03T12:00:00Z') })
      clock.ms += 4 * 86_400_000 // 6 days left
      const second = await pki.refreshCrlIfDue(7)
      expect(second).toEqual({ refreshed: true, nextUpdate: new Date('2026-12-07T12:00:00Z') })
      expect(openssl('crl', '-in', pki.paths.crl, '-noout', '-nextupdate')).toContain('Dec  7 12:00:00 2026 GMT')
      writeFileSync(pki.paths.crl, 'not a CRL')
      expect((await pki.refreshCrlIfDue(7)).refreshed).toBe(true)
      const verified = spawnSync('openssl', ['crl', '-in', pki.paths.crl, '-noout', '-CAfile', pki.paths.caCert], { encoding: 'utf8' })
      expect(verified.stderr.trim()).toBe('verify OK')
    } finally {
      pki.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('pki renew', () => {
  it('issues a new key and certificate for the same identity; the old one stays valid, and revoke revokes both', async () => {
    const { startBroker } = await import('../helpers/broker.ts')
    const { mosquittoPub } = await import('../helpers/mosquitto-clients.ts')
    const { copyFileSync } = await import('node:fs')
    const first = await fleet.pki.issue({ deviceId: 'renew-1', kind: 'energy', site: 'harbour', days: 20 })
    const oldCert = `${first.certificatePath}.old`
    const oldKey = `${first.privateKeyPath!}.old`
    copyFileSync(first.certificatePath, oldCert)
    copyFileSync(first.privateKeyPath!, oldKey)
    const renewed = await fleet.pki.renew('renew-1', { days: 365 })
    expect(renewed.record).toMatchObject({ deviceId: 'renew-1', kind: 'energy', site: 'harbour', status: 'active' })
    expect(renewed.record.serial).not.toBe(first.record.serial)
    expect(renewed.superseded.serial).toBe(first.record.serial)
    expect(readFileSync(renewed.certificatePath, 'utf8')).not.toBe(readFileSync(oldCert, 'utf8'))
    expect(readdirSync(fleet.paths.devicesDir).filter((name) => name.endsWith('.previous'))).toEqual([])
    const entries = fleet.pki.list().filter((e) => e.deviceId === 'renew-1')
    expect(entries.map((e) => [e.serial, e.effectiveStatus])).toEqual([[first.record.serial, 'superseded'], [renewed.record.serial, 'active']])
    for (const cert of [oldCert, renewed.certificatePath]) {
      expect(openssl('verify', '-CAfile', fleet.paths.caCert, '-crl_check', '-CRLfile', fleet.paths.crl, cert)).toContain('OK')
    }
    // The broker takes both until the device has switched.
    const running = await startBroker(fleet)
    try {
      const topic = 'places/harbour/energy/renew-1/telemetry'
      expect((await mosquittoPub(running.port, { cafile: fleet.paths.caCert, cert: oldCert, key: oldKey }, 'renew-1', topic, '{}')).code).toBe(0)
      expect((await mosquittoPub(running.port, { cafile: fleet.paths.caCert, cert: renewed.certificatePath, key: renewed.privateKeyPath! }, 'renew-1', topic, '{}')).code).toBe(0)
    } finally {
      await running.close()
    }
    const revoked = await fleet.pki.revoke('renew-1')
    expect(revoked.map((r) => r.serial).sort()).toEqual([first.record.serial, renewed.record.serial].sort())
    const crl = openssl('crl', '-in', fleet.paths.crl, '-noout', '-text').toLowerCase()
    for (const serial of [first.record.serial, renewed.record.serial]) expect(crl).toContain(`serial number: ${serial}`)
    await expectError(fleet.pki.renew('renew-1'), 'PG_ERR_PKI_UNKNOWN_DEVICE', 'deviceId')
    await expectError(fleet.pki.renew('nobody-1'), 'PG_ERR_PKI_UNKNOWN_DEVICE', 'deviceId')
  })

  it('upgrades an inventory made before renewals existed, keeping its rows', async () => {
    const { DatabaseSync } = await import('node:sqlite')
    const { Inventory } = await import('../../pki/inventory.ts')
    const dir = mkdtempSync(join(tmpdir(), 'placeguard-inventory-'))
    try {
      const path = join(dir, 'inventory.db')
      const old = new DatabaseSync(path)
      old.exec(`CREATE TABLE certificates (serial TEXT PRIMARY KEY, device_id TEXT NOT NULL, role TEXT NOT NULL CHECK (role IN ('device', 'collector', 'server')),
        kind TEXT, site TEXT, not_before TEXT NOT NULL, not_after TEXT NOT NULL, key_algorithm TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('active', 'revoked')), issued_at TEXT NOT NULL, revoked_at TEXT, fingerprint TEXT NOT NULL);
        CREATE UNIQUE INDEX one_active_identity ON certificates (role, device_id) WHERE status = 'active';
        INSERT INTO certificates VALUES ('0a', 'flood-1', 'device', 'flood', 'riverside', '2026-01-01T00:00:00Z', '2027-01-01T00:00:00Z', 'ecdsa-p256', 'active', '2026-01-01T00:00:00Z', NULL, 'ff');`)
      old.close()
      const inventory = new Inventory(path)
      expect(inventory.list().map((r) => [r.serial, r.status])).toEqual([['0a', 'active']])
      expect(inventory.supersede('device', 'flood-1')).toMatchObject({ serial: '0a', status: 'superseded' })
      inventory.close()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('reserved names (issue 2)', () => {
  it.each(['collector', 'collector-operator', 'placeguard', 'placeguard-bridge'])('refuses "%s" as a device id in issue, bulk issue and sign, naming the field', async (name) => {
    const before = fleet.pki.list().length
    const single = await expectError(fleet.pki.issue({ deviceId: name, kind: 'flood', site: 'a' }), 'PG_ERR_INPUT_INVALID', 'deviceId')
    expect(single.message).toContain('reserved')
    expect(single.hint).toContain('collector')
    await expectError(fleet.pki.issueMany([{ deviceId: 'fine-1', kind: 'flood', site: 'a' }, { deviceId: name, kind: 'flood', site: 'a' }]), 'PG_ERR_INPUT_INVALID', 'deviceId')
    const dir = mkdtempSync(join(tmpdir(), 'placeguard-csr-'))
    try {
      openssl('req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', `/CN=${name}`,
        '-keyout', join(dir, 'device.key'), '-out', join(dir, 'device.csr'))
      await expectError(fleet.pki.signCsr(readFileSync(join(dir, 'device.csr'), 'utf8'), { kind: 'flood', site: 'a' }), 'PG_ERR_INPUT_INVALID', 'csr CN')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
    expect(fleet.pki.list().length).toBe(before)
    expect(existsSync(join(fleet.paths.devicesDir, `${name}.crt`))).toBe(false)
  })

  it('refuses to renew a reserved id, even one an older version let through', async () => {
    await expectError(fleet.pki.renew('collector'), 'PG_ERR_INPUT_INVALID', 'deviceId')
  })
})

describe('revoked certificates in the CRL (issue 4)', () => {
  it('keeps a revoked certificate that has just expired, drops one long expired', async () => {
    const dayMs = 86_400_000
    const justExpired = await fleet.pki.issue({
      deviceId: 'lapsed-1', kind: 'flood', site: 'a', notBefore: new Date(Date.now() - 30 * dayMs), notAfter: new Date(Date.now() - 60_000),
    })
    const longGone = await fleet.pki.issue({
      deviceId: 'lapsed-2', kind: 'flood', site: 'a', notBefore: new Date(Date.now() - 400 * dayMs), notAfter: new Date(Date.now() - 200 * dayMs),
    })
    await fleet.pki.revoke('lapsed-1')
    await fleet.pki.revoke('lapsed-2')
    const crl = openssl('crl', '-in', fleet.paths.crl, '-noout', '-text').toLowerCase()
    // The broker's live-session sweep drops a session by the serial in the CRL, whatever notAfter says.
    expect(crl).toContain(`serial number: ${justExpired.record.serial}`)
    expect(crl).not.toContain(`serial number: ${longGone.record.serial}`)
  })
})

describe('one key, one identity (issue 11)', () => {
  it('refuses a CSR whose key another identity holds, until that certificate is revoked', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'placeguard-csr-'))
    const csr = (cn: string, key: string): string => {
      openssl('req', '-new', '-key', key, '-subj', `/CN=${cn}`, '-out', join(dir, `${cn}.csr`))
      return readFileSync(join(dir, `${cn}.csr`), 'utf8')
    }
    try {
      openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', join(dir, 'shared.key'))
      const first = await fleet.pki.signCsr(csr('keyholder-1', join(dir, 'shared.key')), { kind: 'energy', site: 'depot' })
      expect(first.record.spkiSha256).toMatch(/^[0-9a-f]{64}$/)
      const before = fleet.pki.list().length
      const error = await expectError(fleet.pki.signCsr(csr('keythief-1', join(dir, 'shared.key')), { kind: 'energy', site: 'depot' }), 'PG_ERR_PKI_KEY_IN_USE', 'csr')
      expect(error.message).toContain('keyholder-1')
      expect(fleet.pki.list().length).toBe(before)
      expect(existsSync(join(fleet.paths.devicesDir, 'keythief-1.crt'))).toBe(false)
      // A key `pki issue` made is bound too.
      const issued = await fleet.pki.issue({ deviceId: 'keyholder-2', kind: 'flood', site: 'a' })
      await expectError(fleet.pki.signCsr(csr('keythief-2', issued.privateKeyPath!), { kind: 'flood', site: 'a' }), 'PG_ERR_PKI_KEY_IN_USE', 'csr')
      // Once the holder is revoked the key is free again (a device moved to a new id keeps its key).
      await fleet.pki.revoke('keyholder-1')
      expect((await fleet.pki.signCsr(csr('keyholder-3', join(dir, 'shared.key')), { kind: 'energy', site: 'depot' })).record.status).toBe('active')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('one key, one identity, in an inventory from before the check', () => {
  it('reads the key hashes of existing certificates from their files, so a CSR reusing one is refused', async () => {
    const { DatabaseSync } = await import('node:sqlite')
    const dataDir = mkdtempSync(join(tmpdir(), 'placeguard-legacy-'))
    const csrDir = mkdtempSync(join(tmpdir(), 'placeguard-csr-'))
    try {
      const before = new FleetPki(dataDir)
      await before.init()
      const legacy = await before.issue({ deviceId: 'legacy-1', kind: 'flood', site: 'a' })
      before.close()
      // Put the inventory back into its old shape: twelve columns, no key hashes.
      const db = new DatabaseSync(legacy.certificatePath.replace(/devices\/legacy-1\.crt$/, 'inventory.db'))
      db.exec(`CREATE TABLE old (serial TEXT PRIMARY KEY, device_id TEXT NOT NULL, role TEXT NOT NULL CHECK (role IN ('device', 'collector', 'server')),
        kind TEXT, site TEXT, not_before TEXT NOT NULL, not_after TEXT NOT NULL, key_algorithm TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('active', 'revoked', 'superseded')), issued_at TEXT NOT NULL, revoked_at TEXT, fingerprint TEXT NOT NULL);
        INSERT INTO old SELECT serial, device_id, role, kind, site, not_before, not_after, key_algorithm, status, issued_at, revoked_at, fingerprint FROM certificates;
        DROP TABLE certificates; ALTER TABLE old RENAME TO certificates;
        CREATE UNIQUE INDEX one_active_identity ON certificates (role, device_id) WHERE status = 'active';
        DELETE FROM meta WHERE key <> 'crl_number';`)
      db.close()
      const after = new FleetPki(dataDir)
      try {
        openssl('req', '-new', '-key', legacy.privateKeyPath!, '-subj', '/CN=thief-1', '-out', join(csrDir, 'thief.csr'))
        await expectError(after.signCsr(readFileSync(join(csrDir, 'thief.csr'), 'utf8'), { kind: 'flood', site: 'a' }), 'PG_ERR_PKI_KEY_IN_USE', 'csr')
        openssl('req', '-new', '-key', after.paths.collectorKey, '-subj', '/CN=thief-2', '-out', join(csrDir, 'collector.csr'))
        await expectError(after.signCsr(readFileSync(join(csrDir, 'collector.csr'), 'utf8'), { kind: 'flood', site: 'a' }), 'PG_ERR_PKI_KEY_IN_USE', 'csr')
        expect(after.list().find((e) => e.deviceId === 'legacy-1')).toMatchObject({ status: 'active', certificatePath: legacy.certificatePath })
      } finally {
        after.close()
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true })
      rmSync(csrDir, { recursive: true, force: true })
    }
  })
})

describe('pki revoke --serial (defect 8)', () => {
  it('revokes one certificate by serial whatever its status, and lists it in the CRL', async () => {
    const first = await fleet.pki.issue({ deviceId: 'by-serial-1', kind: 'housing', site: 'block-a' })
    const renewed = await fleet.pki.renew('by-serial-1')
    const revoked = await fleet.pki.revokeSerial(first.record.serial.toUpperCase())
    expect(revoked).toMatchObject({ serial: first.record.serial, status: 'revoked' })
    const statuses = fleet.pki.list().filter((e) => e.deviceId === 'by-serial-1').map((e) => [e.serial, e.effectiveStatus])
    expect(statuses).toEqual([[first.record.serial, 'revoked'], [renewed.record.serial, 'active']])
    const verify = spawnSync('openssl', ['verify', '-CAfile', fleet.paths.caCert, '-crl_check', '-CRLfile', fleet.paths.crl, renewed.certificatePath], { encoding: 'utf8' })
    expect(verify.status).toBe(0)
    expect(openssl('crl', '-in', fleet.paths.crl, '-noout', '-text').toLowerCase()).toContain(`serial number: ${first.record.serial}`)
    await expectError(fleet.pki.revokeSerial('7fffffffffffffffffffffffffffffff'), 'PG_ERR_PKI_UNKNOWN_SERIAL', 'serial')
    await expectError(fleet.pki.revokeSerial('not-hex'), 'PG_ERR_INPUT_INVALID', 'serial')
  })
})

describe('inventory migration', () => {
  it('upgrades an inventory from before pending rows and key hashes, keeping its rows and its one-active rule', async () => {
    const { DatabaseSync } = await import('node:sqlite')
    const { Inventory } = await import('../../pki/inventory.ts')
    const dir = mkdtempSync(join(tmpdir(), 'placeguard-inventory-'))
    try {
      const path = join(dir, 'inventory.db')
      const old = new DatabaseSync(path)
      old.exec(`CREATE TABLE certificates (serial TEXT PRIMARY KEY, device_id TEXT NOT NULL, role TEXT NOT NULL CHECK (role IN ('device', 'collector', 'server')),
        kind TEXT, site TEXT, not_before TEXT NOT NULL, not_after TEXT NOT NULL, key_algorithm TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('active', 'revoked', 'superseded')), issued_at TEXT NOT NULL, revoked_at TEXT, fingerprint TEXT NOT NULL);
        CREATE UNIQUE INDEX one_active_identity ON certificates (role, device_id) WHERE status = 'active';
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('crl_number', '7');
        INSERT INTO certificates VALUES ('0a', 'flood-1', 'device', 'flood', 'riverside', '2026-01-01T00:00:00Z', '2027-01-01T00:00:00Z', 'ecdsa-p256', 'superseded', '2026-01-01T00:00:00Z', NULL, 'ff');
        INSERT INTO certificates VALUES ('0b', 'flood-1', 'device', 'flood', 'riverside', '2026-02-01T00:00:00Z', '2027-02-01T00:00:00Z', 'ecdsa-p256', 'active', '2026-02-01T00:00:00Z', NULL, 'ee');`)
      old.close()
      const inventory = new Inventory(path)
      expect(inventory.list().map((r) => [r.serial, r.status, r.fingerprint, r.spkiSha256])).toEqual([['0a', 'superseded', 'ff', null], ['0b', 'active', 'ee', null]])
      expect(inventory.nextCrlNumber()).toBe(8)
      const pending = { ...inventory.list()[1]!, serial: '0c', status: 'pending' as const, fingerprint: null, certificatePath: join(dir, 'flood-1.crt') }
      inventory.insert(pending)
      expect(() => inventory.insert({ ...pending, serial: '0d' })).toThrow(/UNIQUE/)
      expect(inventory.activate('0c', { fingerprint: 'dd', spkiSha256: 'cc' })).toMatchObject({ status: 'active', spkiSha256: 'cc' })
      expect(inventory.list().map((r) => [r.serial, r.status])).toEqual([['0a', 'superseded'], ['0b', 'superseded'], ['0c', 'active']])
      expect(() => inventory.insert({ ...pending, serial: '0e', status: 'active' })).toThrow(/UNIQUE/)
      inventory.close()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('a failed issue', () => {
  it('leaves no pending serial behind: one whose directory cannot be made is revoked', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'placeguard-out-'))
    try {
      writeFileSync(join(dir, 'file'), '')
      const error = await fleet.pki.issue({ deviceId: 'nowhere-1', kind: 'flood', site: 'a', outDir: join(dir, 'file', 'devices') }).then(() => undefined, (e: unknown) => e)
      expect((error as NodeJS.ErrnoException).code).toBe('ENOTDIR')
      expect(fleet.pki.list().filter((e) => e.deviceId === 'nowhere-1').map((e) => e.status)).toEqual(['revoked'])
      // The id is free again.
      expect((await fleet.pki.issue({ deviceId: 'nowhere-1', kind: 'flood', site: 'a' })).record.status).toBe('active')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
