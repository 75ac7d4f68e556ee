/**
 * A client certificate signed by the fleet CA with the openssl CLI, outside
 * PlaceGuard's PKI code: for certificates the PKI would refuse to issue
 * today (a reserved id, a second collector name) but that may already exist.
 */
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { TestFleet } from './fleet.ts'

export function opensslLeaf (fleet: TestFleet, name: string, options: { commonName: string, sanUri: string }): { cert: string, key: string } {
  const base = join(fleet.dataDir, `openssl-${name}`)
  const files = { cert: `${base}.crt`, key: `${base}.key` }
  writeFileSync(`${base}.ext`, [
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature',
    'extendedKeyUsage=clientAuth',
    `subjectAltName=URI:${options.sanUri}`,
  ].join('\n'))
  execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', files.key, '-subj', `/CN=${options.commonName}`, '-out', `${base}.csr`], { stdio: 'pipe' })
  execFileSync('openssl', ['x509', '-req', '-in', `${base}.csr`, '-CA', fleet.paths.caCert, '-CAkey', fleet.paths.caKey,
    '-set_serial', `0x${randomBytes(8).toString('hex')}`, '-days', '2', '-extfile', `${base}.ext`, '-out', files.cert], { stdio: 'pipe' })
  return files
}
