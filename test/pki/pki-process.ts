/**
 * A second (or third) process working on the same fleet PKI, for tests
 * that need real processes racing, or a real kill -9. Each line it prints
 * is written synchronously, so the parent never reads ahead of the work.
 *
 *   node pki-process.ts issue  <dataDir> <count> <prefix> [archive.tar]   progress lines "<done>"
 *   node pki-process.ts renew  <dataDir> <rounds> <id...>   renews each id until it fails; "renewed <id>" / "stopped <id> <code>"
 *   node pki-process.ts revoke <dataDir> <id...>            revokes each in turn; after each, "crl <cRLNumber on disk> <own serials missing from it>"
 */
import { readFileSync, writeSync } from 'node:fs'
import { FleetPki, readCrl, normalizeSerial } from '../../pki/index.ts'
import { x509 } from '../../pki/certificates.ts'

const [mode, dataDir, ...rest] = process.argv.slice(2) as [string, string, ...string[]]
const pki = new FleetPki(dataDir)
const say = (line: string): void => { writeSync(1, `${line}\n`) }

/** The cRLNumber of the CRL file as it is on disk now. */
function crlNumberOnDisk (pem: string): number {
  const crl = new x509.X509Crl(pem.replace(/X509 CRL/g, 'CRL'))
  const ext = crl.getExtension('2.5.29.20')
  return ext ? Buffer.from(ext.value).readUIntBE(2, new Uint8Array(ext.value)[1]!) : 0
}

if (mode === 'issue') {
  const [count, prefix, archive] = rest as [string, string, string | undefined]
  await pki.issueMany(Array.from({ length: Number(count) }, (_, i) => ({ deviceId: `${prefix}-${i}`, kind: 'flood', site: 'riverside' })),
    (done) => say(String(done)), { archive })
  say('done')
} else if (mode === 'renew') {
  const [rounds, ...ids] = rest as [string, ...string[]]
  await Promise.all(ids.map(async (id) => {
    for (let i = 0; i < Number(rounds); i++) {
      try {
        await pki.renew(id, { days: 30 })
        say(`renewed ${id}`)
      } catch (error) {
        say(`stopped ${id} ${(error as { code?: string }).code ?? (error as Error).message}`)
        return
      }
    }
  }))
} else if (mode === 'revoke') {
  const ca = readFileSync(pki.paths.caCert, 'utf8')
  const mine: string[] = []
  for (const id of rest) {
    const revoked = await pki.revoke(id)
    mine.push(...revoked.map((r) => normalizeSerial(r.serial)))
    const pem = readFileSync(pki.paths.crl, 'utf8')
    const listed = (await readCrl(pem, ca)).revokedSerials
    say(`crl ${crlNumberOnDisk(pem)} ${mine.filter((serial) => !listed.has(serial)).length}`)
  }
}
pki.close()
