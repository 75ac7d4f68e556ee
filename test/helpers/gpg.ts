/**
 * Keys and detached signatures made by the real GnuPG (/usr/bin/gpg), as a
 * CSAF provider makes them, so OpenPGP checks are tested against what
 * providers publish and not only against OpenPGP.js itself. Each keyring
 * lives in a temporary GNUPGHOME; `close` stops the gpg-agent it started.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface GpgKeyring {
  /** Makes a signing key (`ed25519`, `rsa3072`); `expire` as gpg takes it (`never`, `1y`); `at` fakes gpg's clock (`20200101T000000`). Returns its fingerprint. */
  generate: (userId: string, options?: { algo?: string, expire?: string, at?: string }) => string
  /** The armored public key, as `gpg --export --armor` writes it. */
  exportPublic: (fingerprint: string) => string
  /** Writes `<file>.asc`, an armored detached signature of the file's bytes. */
  signDetached: (fingerprint: string, file: string, options?: { at?: string }) => void
  /** Imports the revocation certificate gpg made with the key: the key is revoked from then on. */
  revoke: (fingerprint: string) => void
  close: () => void
}

export function gpgKeyring (): GpgKeyring {
  const home = mkdtempSync(join(tmpdir(), 'pg-gpg-'))
  const gpg = (args: string[], at?: string): string => execFileSync('/usr/bin/gpg', [
    '--homedir', home, '--batch', '--yes', '--pinentry-mode', 'loopback', '--passphrase', '',
    ...(at ? ['--faked-system-time', `${at}!`] : []), ...args,
  ], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  return {
    generate (userId, options = {}) {
      gpg(['--quick-generate-key', userId, options.algo ?? 'ed25519', 'sign', options.expire ?? 'never'], options.at)
      const fingerprints = gpg(['--with-colons', '--list-keys', userId]).split('\n').filter((l) => l.startsWith('fpr:')).map((l) => l.split(':')[9]!)
      return fingerprints[0]!
    },
    exportPublic: (fingerprint) => gpg(['--armor', '--export', fingerprint]),
    signDetached (fingerprint, file, options = {}) {
      gpg(['--local-user', fingerprint, '--armor', '--detach-sign', '--output', `${file}.asc`, file], options.at)
    },
    revoke (fingerprint) {
      const certificate = readFileSync(join(home, 'openpgp-revocs.d', `${fingerprint}.rev`), 'utf8').replace(/^:-----BEGIN/m, '-----BEGIN')
      execFileSync('/usr/bin/gpg', ['--homedir', home, '--batch', '--import'], { input: certificate, stdio: ['pipe', 'pipe', 'pipe'] })
    },
    close () {
      try {
        execFileSync('gpgconf', ['--homedir', home, '--kill', 'gpg-agent'], { stdio: 'ignore' })
      } finally {
        rmSync(home, { recursive: true, force: true })
      }
    },
  }
}
