/**
 * A batch of identities into one tar archive (`pki issue-batch --archive`):
 * GNU tar unpacks it with the keys still 0600, every certificate verifies
 * against the fleet CA with its own key beside it, a device flashed from
 * it connects to the broker as itself, an archive that exists is never
 * written over, and a kill -9 mid-batch leaves nothing in service that is
 * not whole in the archive.
 */
import { spawnSync } from 'node:child_process'
import { createPrivateKey, X509Certificate } from 'node:crypto'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { issueAndKill } from '../helpers/issue-and-kill.ts'
import { FleetPki, normalizeSerial, readTarMembers, signingThreadsFor, splitArchiveMemberPath } from '../../pki/index.ts'
import { PlaceGuardBroker } from '../../broker/index.ts'
import { createLogger } from '../../shared/logger.ts'
import { mosquittoPub } from '../helpers/mosquitto-clients.ts'

const dirs: string[] = []
afterAll(() => { for (const dir of dirs) rmSync(dir, { recursive: true, force: true }) })

function tempDir (): string {
  const dir = mkdtempSync(join(tmpdir(), 'placeguard-pki-archive-'))
  dirs.push(dir)
  return dir
}

function tar (...args: string[]): { status: number | null, stdout: string, stderr: string } {
  return spawnSync('tar', args, { encoding: 'utf8' })
}

const requests = (count: number, prefix = 'flood') => Array.from({ length: count }, (_, i) => ({ deviceId: `${prefix}-${i}`, kind: 'flood', site: 'riverside' }))

describe('identities issued into one archive', () => {
  it('unpacks with GNU tar into whole identities, keys 0600, each verified by the fleet CA, and a device from it connects', async () => {
    const dataDir = tempDir()
    const pki = new FleetPki(dataDir)
    await pki.init()
    const count = 600
    expect(signingThreadsFor(count)).toBeGreaterThan(1) // the worker threads' path, where entries travel between threads
    const archive = join(dataDir, 'out', 'batch.tar')
    const issued = await pki.issueMany(requests(count), undefined, { archive })

    expect(statSync(archive).mode & 0o777).toBe(0o600) // it holds private keys
    const listing = tar('-tvf', archive)
    expect(listing.status).toBe(0)
    const lines = listing.stdout.trim().split('\n')
    expect(lines).toHaveLength(2 * count + 1)
    expect(lines[0]).toMatch(/^-rw-r--r-- .* ca\.crt$/)
    expect(lines.filter((line) => line.endsWith('.key')).every((line) => line.startsWith('-rw------- '))).toBe(true)

    const unpacked = join(dataDir, 'unpacked')
    mkdirSync(unpacked)
    expect(tar('-xf', archive, '-C', unpacked).status).toBe(0)
    expect(readdirSync(unpacked)).toHaveLength(2 * count + 1)
    expect(readFileSync(join(unpacked, 'ca.crt'), 'utf8')).toBe(readFileSync(pki.paths.caCert, 'utf8'))
    const listed = new Map(pki.list().map((entry) => [entry.deviceId, entry]))
    for (const [i, device] of issued.entries()) {
      const id = `flood-${i}`
      expect(device.certificatePath).toBe(`${archive}#${id}.crt`)
      expect(splitArchiveMemberPath(device.certificatePath)).toEqual({ archive, member: `${id}.crt` })
      const certificate = new X509Certificate(readFileSync(join(unpacked, `${id}.crt`)))
      expect(certificate.checkPrivateKey(createPrivateKey(readFileSync(join(unpacked, `${id}.key`))))).toBe(true)
      expect(certificate.verify(new X509Certificate(readFileSync(pki.paths.caCert)).publicKey)).toBe(true)
      expect(statSync(join(unpacked, `${id}.key`)).mode & 0o777).toBe(0o600)
      const entry = listed.get(id)!
      expect(entry.status).toBe('active')
      expect(normalizeSerial(certificate.serialNumber)).toBe(normalizeSerial(entry.serial!))
    }
    // openssl, not only Node, takes them: the CA and the CRL as a device's TLS stack would.
    const verified = spawnSync('openssl', ['verify', '-CAfile', join(unpacked, 'ca.crt'), '-crl_check', '-CRLfile', pki.paths.crl,
      join(unpacked, 'flood-0.crt'), join(unpacked, `flood-${count - 1}.crt`)], { encoding: 'utf8' })
    expect(verified.stdout).toBe(`${join(unpacked, 'flood-0.crt')}: OK\n${join(unpacked, `flood-${count - 1}.crt`)}: OK\n`)
    pki.close()

    // A device flashed from the archive connects as itself: Debian's mosquitto_pub with the unpacked files.
    const broker = new PlaceGuardBroker({
      tls: { caCert: pki.paths.caCert, serverCert: pki.paths.serverCert, serverKey: pki.paths.serverKey, crl: pki.paths.crl },
      host: '127.0.0.1', port: 0, logger: createLogger({ level: 'silent' }),
    })
    const { port } = await broker.listen()
    try {
      const tls = { cafile: join(unpacked, 'ca.crt'), cert: join(unpacked, 'flood-7.crt'), key: join(unpacked, 'flood-7.key') }
      const own = await mosquittoPub(port, tls, 'flood-7', 'places/riverside/flood/flood-7/telemetry', JSON.stringify({ ts: new Date().toISOString(), seq: 1, fw: '1.0.0', level_cm: 12 }))
      expect(own).toEqual({ code: 0, stderr: '' })
      // The identity is the certificate's, not the client id it claims.
      const other = await mosquittoPub(port, tls, 'flood-8', 'places/riverside/flood/flood-8/telemetry', '{}')
      expect(other.code).not.toBe(0)
    } finally {
      await broker.close()
    }
  }, 60_000)

  it('refuses an archive that exists without touching it or recording anything, and a name that is not .tar', async () => {
    const dataDir = tempDir()
    const pki = new FleetPki(dataDir)
    await pki.init()
    const archive = join(dataDir, 'batch.tar')
    writeFileSync(archive, 'an earlier batch')
    await expect(pki.issueMany(requests(3), undefined, { archive })).rejects.toMatchObject({ code: 'PG_ERR_INPUT_INVALID', field: 'archive' })
    expect(readFileSync(archive, 'utf8')).toBe('an earlier batch')
    expect(pki.list().filter((entry) => entry.role === 'device')).toEqual([])
    await expect(pki.issueMany(requests(3), undefined, { archive: join(dataDir, 'batch.zip') })).rejects.toMatchObject({ field: 'archive' })
    expect(existsSync(join(dataDir, 'batch.zip'))).toBe(false)
    // An id already held is refused before the archive is created: no empty archive is left behind.
    await pki.issue({ deviceId: 'flood-1', kind: 'flood', site: 'riverside' })
    const second = join(dataDir, 'second.tar')
    await expect(pki.issueMany(requests(3), undefined, { archive: second })).rejects.toMatchObject({ code: 'PG_ERR_PKI_DUPLICATE_ID' })
    expect(existsSync(second)).toBe(false)
    pki.close()
  })

  it('reads the archives GNU tar writes, and stops at a member cut short', () => {
    const dir = tempDir()
    writeFileSync(join(dir, 'a.crt'), 'A'.repeat(700))
    writeFileSync(join(dir, 'b.key'), 'B'.repeat(100))
    expect(tar('--format=ustar', '-cf', join(dir, 'x.tar'), '-C', dir, 'a.crt', 'b.key').status).toBe(0)
    const members = readTarMembers(join(dir, 'x.tar'))
    expect([...members.keys()]).toEqual(['a.crt', 'b.key'])
    expect(members.get('a.crt')!.toString()).toBe('A'.repeat(700))
    truncateSync(join(dir, 'x.tar'), 512 + 1024 + 512 + 50) // b.key's content cut short
    expect([...readTarMembers(join(dir, 'x.tar')).keys()]).toEqual(['a.crt'])
    expect(readTarMembers(join(dir, 'missing.tar')).size).toBe(0)
  })
})


describe('a crash while a batch is written into an archive', () => {
  it('reconcile puts in service what is whole in the archive and revokes the rest', async () => {
    const dataDir = tempDir()
    const pki = new FleetPki(dataDir)
    await pki.init()
    const archive = join(dataDir, 'factory', 'batch.tar')
    const reported = await issueAndKill(dataDir, 1000, 300, archive)
    expect(reported).toBeGreaterThanOrEqual(300)
    expect(pki.list().filter((entry) => entry.status === 'pending')).toHaveLength(1000) // killed before the batch was marked active

    // A power cut can also cut the file's tail: the last member in it goes, whatever the kill left.
    const members = readTarMembers(archive)
    const inArchive = [...members.keys()].filter((name) => name.endsWith('.crt') && name !== 'ca.crt')
    expect(inArchive.length).toBeGreaterThanOrEqual(300)
    expect(inArchive.length).toBeLessThan(1000)
    truncateSync(archive, statSync(archive).size - 700)
    const whole = readTarMembers(archive)
    const complete = [...whole.keys()].filter((name) => name.endsWith('.crt') && whole.has(name.replace(/\.crt$/, '.key')))
    expect(complete.length).toBe(inArchive.length - 1)

    const report = await pki.reconcile()
    expect(report.activated.map((record) => `${record.deviceId}.crt`).sort()).toEqual(complete.sort())
    expect(report.revoked).toHaveLength(1000 - complete.length)
    expect(pki.list().filter((entry) => entry.status === 'pending')).toEqual([])
    const crlText = spawnSync('openssl', ['crl', '-in', pki.paths.crl, '-noout', '-text'], { encoding: 'utf8' }).stdout.toLowerCase()
    for (const record of report.revoked) expect(crlText).toContain(`serial number: ${record.serial}`)
    // In service means whole: the certificate and its own key, both in the archive.
    for (const record of report.activated) {
      const certificate = new X509Certificate(whole.get(`${record.deviceId}.crt`)!)
      expect(certificate.checkPrivateKey(createPrivateKey(whole.get(`${record.deviceId}.key`)!))).toBe(true)
      expect(normalizeSerial(certificate.serialNumber)).toBe(normalizeSerial(record.serial))
    }
    pki.close()
  }, 120_000)
})
