/**
 * Bearer tokens (PLACEGUARD_API_TOKENS). Tokens are compared by their
 * SHA-256, so the lookup's timing says nothing about how much of a guess
 * was right, and the tokens themselves are never kept in the request.
 */
import { createHash } from 'node:crypto'
import type { ApiRole } from './config.ts'

export interface Authenticated {
  role: ApiRole
  /** Who acted, for alerts' acknowledgedBy and the rate limit: a short fingerprint of the token, never the token. */
  name: string
}

const digests = new WeakMap<ReadonlyArray<{ token: string, role: ApiRole }>, Map<string, ApiRole>>()

function digest (token: string): string {
  return createHash('sha256').update(token).digest('hex')
}

export function authenticate (header: string | undefined, tokens: ReadonlyArray<{ token: string, role: ApiRole }>): Authenticated | undefined {
  const match = /^Bearer ([\x21-\x7e]{1,512})$/.exec(header ?? '')
  if (!match) return undefined
  let table = digests.get(tokens)
  if (!table) digests.set(tokens, table = new Map(tokens.map(({ token, role }) => [digest(token), role])))
  const hash = digest(match[1]!)
  const role = table.get(hash)
  return role && { role, name: `${role}:${hash.slice(0, 8)}` }
}
