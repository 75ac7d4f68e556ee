/**
 * The API's part of the configuration: its bearer tokens and their roles
 * (`apiTokens`, PLACEGUARD_API_TOKENS), composed into the whole
 * configuration in app/config.ts.
 */
import { z } from 'zod'

export const API_ROLES = ['viewer', 'operator'] as const
export type ApiRole = typeof API_ROLES[number]

/** `token:role,…` (docs/product.md); tokens of at least 16 characters, since they stand alone as credentials. */
const apiTokens = z.string().transform((value, context) => {
  const tokens: Array<{ token: string, role: ApiRole }> = []
  for (const item of value.split(',').map((part) => part.trim()).filter(Boolean)) {
    const at = item.lastIndexOf(':')
    const token = item.slice(0, at)
    const role = item.slice(at + 1)
    if (at < 0 || !(API_ROLES as readonly string[]).includes(role)) {
      context.addIssue({ code: 'custom', message: `each entry must be token:viewer or token:operator (entry ${tokens.length + 1} is not)` })
      return z.NEVER
    }
    if (token.length < 16) {
      context.addIssue({ code: 'custom', message: `entry ${tokens.length + 1}: a token needs at least 16 characters; generate one with \`openssl rand -base64 24\`` })
      return z.NEVER
    }
    tokens.push({ token, role: role as ApiRole })
  }
  return tokens
})

/** Bearer tokens of the HTTP API; none: only /healthz and /readyz answer. */
export const apiTokensSchema = apiTokens.default([]).describe('token:role,… with roles viewer and operator, tokens of at least 16 characters; none: only /healthz and /readyz answer')

/**
 * HTTP connections the API holds at once, and from one address. Each is a
 * file descriptor of the process, which in `placeguard up` is the broker's
 * too: without a bound, idle connections from one peer (19,500 measured)
 * used every descriptor and the process could open no file.
 */
export const DEFAULT_HTTP_CONNECTION_LIMITS = { maxConnections: 1_024, maxConnectionsPerAddress: 64 } as const
export const httpMaxConnectionsSchema = z.coerce.number().int().positive().default(DEFAULT_HTTP_CONNECTION_LIMITS.maxConnections)
  .describe('HTTP connections at once; beyond it a new one is closed at accept (each is a file descriptor of the process, shared with the broker in `up`)')
export const httpMaxConnectionsPerAddressSchema = z.coerce.number().int().positive().default(DEFAULT_HTTP_CONNECTION_LIMITS.maxConnectionsPerAddress)
  .describe('HTTP connections at once from one source address (IPv6: one /64); a browser holds about six, plus one for the live stream')
