/**
 * The secret the broker derives its TLS session-ticket keys from
 * (`pki/tls-ticket.key`, 32 random bytes as hex, mode 0600), beside the
 * server key: the same secrecy, and the same copy to every broker node, so
 * a device resumes its session after a broker restart and on any node
 * (docs/broker.md, "Session resumption"). The PKI makes it at `pki init`
 * and, for a PKI from before it, at each `pki crl`, so that a broker given
 * a read-only copy of pki/ (docker-compose) finds one; a broker with a
 * writable pki/ makes it at its first start.
 */
import { randomBytes } from 'node:crypto'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { PlaceGuardError } from '../shared/errors.ts'

export const TICKET_SECRET_FILE = 'tls-ticket.key'

/** A new secret, as the file holds it. */
export function newTicketSecret (): string {
  return randomBytes(32).toString('hex') + '\n'
}

/** The secret, made first if missing; undefined when it is missing and its directory is read-only. */
export function readOrCreateTicketSecret (file: string): Buffer | undefined {
  try {
    writeFileSync(file, newTicketSecret(), { mode: 0o600, flag: 'wx' })
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if ((code === 'EROFS' || code === 'EACCES' || code === 'EPERM') && !existsSync(file)) return undefined
    if (code !== 'EEXIST' && !existsSync(file)) {
      throw new PlaceGuardError('PG_ERR_BROKER_TLS', `cannot create the TLS ticket secret ${file}: ${(error as Error).message}`, { cause: error })
    }
  }
  const text = readFileSync(file, 'utf8').trim()
  if (!/^(?:[0-9a-f]{2}){32,}$/i.test(text)) {
    throw new PlaceGuardError('PG_ERR_BROKER_TLS', `the TLS ticket secret ${file} is not 32 or more bytes of hex`, {
      hint: 'delete it to have a new one made at start (devices then do one full handshake), or copy the file from another node of the cluster',
    })
  }
  return Buffer.from(text, 'hex')
}
