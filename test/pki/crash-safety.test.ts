import { spawnSync } from 'node:child_process'
import { copyFileSync, cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { createPrivateKey, X509Certificate } from 'node:crypto'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { issueAndKill } from '../helpers/issue-and-kill.ts'
import { FleetPki, normalizeSerial, signingThreadsFor } from '../../pki/index.ts'

const dirs: string[] = []
afterAll(() => { for (const dir of dirs) rmSync(dir, { recursive: true, force: true }) })

function tempDir (): string {
  const dir = mkdtempSync(join(tmpdir(), 'placeguard-pki-crash-'))
  dirs.push(dir)
  return dir
}

function verify (caCert: string, crl: string, cert: string): { ok: boolean, output: string } {
  const result = spawnSync('openssl', ['verify', '-CAfile', caCert, '-crl_check', '-CRLfile', crl, cert], { encoding: 'utf8' })
  return { ok: result.status === 0, output: result.stdout + result.stderr }
}

function parsesAsCertificate (path: string): boolean {
  try {
    return Boolean(new X509Certificate(readFileSync(path)).serialNumber)
  } catch {
    return false
  }
}


describe('a crash during bulk issuing (defect 8)', () => {
  it('leaves no certificate on disk that the inventory does not know; reconcile revokes what never landed and strays it finds', async () => {
    const dataDir = tempDir()
    const pki = new FleetPki(dataDir)
    await pki.init()
    // A certificate signed by this CA that the inventory never recorded: what a crash of the old order left behind.
    const elsewhere = tempDir()
    cpSync(join(dataDir, 'pki'), join(elsewhere, 'pki'), { recursive: true })
    const other = new FleetPki(elsewhere)
    const stray = await other.issue({ deviceId: 'stray-1', kind: 'energy', site: 'depot' })
    other.close()

    const reported = await issueAndKill(dataDir, 1000, 300)
    expect(reported).toBeGreaterThanOrEqual(300)
    const files = readdirSync(pki.paths.devicesDir).filter((name) => name.endsWith('.crt')).map((name) => join(pki.paths.devicesDir, name))
    // The kill can land inside a write: that file is cut short and is no
    // certificate (reconcile reads content, never names). Each signing
    // thread writes its files one at a time — a large batch goes to one
    // worker a core — so at most one each.
    const torn = files.filter((path) => !parsesAsCertificate(path))
    expect(torn.length).toBeLessThanOrEqual(signingThreadsFor(1000))
    const onDisk = files.filter((path) => !torn.includes(path))
    expect(onDisk.length).toBeGreaterThanOrEqual(300)
    expect(onDisk.length).toBeLessThan(1000)
    const known = new Map(pki.list().map((entry) => [normalizeSerial(entry.serial!), entry]))
    const unknownFiles = onDisk.filter((path) => !known.has(normalizeSerial(new X509Certificate(readFileSync(path)).serialNumber)))
    expect(unknownFiles).toEqual([])
    const pending = pki.list().filter((entry) => entry.status === 'pending')
    expect(pending.length).toBe(1000) // killed before the batch was marked active

    copyFileSync(stray.certificatePath, join(pki.paths.devicesDir, 'stray-1.crt'))
    // Files are synced once a batch: a power cut can keep a certificate and cut its key short.
    const cutKey = onDisk[1]!.replace(/\.crt$/, '.key')
    writeFileSync(cutKey, readFileSync(cutKey, 'utf8').slice(0, 100))
    const report = await pki.reconcile()
    expect(report.activated.length).toBe(onDisk.length - 1)
    expect(report.revoked.length).toBe(1000 - onDisk.length + 1)
    expect(report.revoked.map((record) => record.certificatePath)).toContain(onDisk[1])
    expect(report.unknown.map((u) => [u.record.deviceId, u.record.serial])).toEqual([['stray-1', normalizeSerial(stray.record.serial)]])
    expect(pki.list().filter((entry) => entry.status === 'pending')).toEqual([])

    // The CRL lists every serial that never landed (a signed certificate may exist somewhere) and the stray.
    const crlText = spawnSync('openssl', ['crl', '-in', pki.paths.crl, '-noout', '-text'], { encoding: 'utf8' }).stdout.toLowerCase()
    for (const record of report.revoked) expect(crlText).toContain(`serial number: ${record.serial}`)
    const refused = verify(pki.paths.caCert, pki.paths.crl, join(pki.paths.devicesDir, 'stray-1.crt'))
    expect(refused.ok).toBe(false)
    expect(refused.output).toContain('certificate revoked')
    // What landed is whole and in service.
    const landed = onDisk[0]!
    expect(verify(pki.paths.caCert, pki.paths.crl, landed).ok).toBe(true)
    const after = new Map(pki.list().map((entry) => [normalizeSerial(entry.serial!), entry]))
    for (const path of onDisk.filter((path) => path !== onDisk[1])) {
      const certificate = new X509Certificate(readFileSync(path))
      expect(after.get(normalizeSerial(certificate.serialNumber))?.effectiveStatus).toBe('active')
      // Every certificate in service has its own key, whole, beside it, 0600.
      const keyPath = path.replace(/\.crt$/, '.key')
      expect(certificate.checkPrivateKey(createPrivateKey(readFileSync(keyPath)))).toBe(true)
      expect(statSync(keyPath).mode & 0o777).toBe(0o600)
    }
    expect(after.get(normalizeSerial(new X509Certificate(readFileSync(onDisk[1]!)).serialNumber))?.status).toBe('revoked')
    pki.close()
  }, 120_000)
})
