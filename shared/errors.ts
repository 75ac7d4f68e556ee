/** What a code means, and how it surfaces: the HTTP status the API answers with, the CLI's exit status. */
export interface ErrorSpec { meaning: string, httpStatus: number, exitCode: 1 | 2 }

/**
 * The one catalogue of PlaceGuard error codes. Every error a user can see
 * carries one of these codes, and the code decides its HTTP status and exit
 * status (as fastify's FST_ERR_* carry their statusCode); docs/errors.md
 * lists them (a test keeps the two in step). Exit 2 is bad input.
 */
export const ERROR_CATALOGUE = {
  PG_ERR_CONFIG_INVALID: { meaning: 'a configuration value is invalid', httpStatus: 500, exitCode: 2 },
  PG_ERR_INPUT_INVALID: { meaning: 'a command-line argument or request field is invalid', httpStatus: 400, exitCode: 2 },
  PG_ERR_PKI_NO_CA: { meaning: 'the fleet CA does not exist in the data directory', httpStatus: 409, exitCode: 1 },
  PG_ERR_PKI_CA_EXISTS: { meaning: 'a fleet CA already exists and is never overwritten', httpStatus: 409, exitCode: 1 },
  PG_ERR_PKI_DUPLICATE_ID: { meaning: 'the id is already held (an active device or integration certificate, or a registered LoRaWAN device), or the DevEUI is already registered', httpStatus: 409, exitCode: 1 },
  PG_ERR_PKI_UNKNOWN_DEVICE: { meaning: 'no active certificate (or, for `devices remove`, no registered LoRaWAN device) exists for this id', httpStatus: 404, exitCode: 1 },
  PG_ERR_PKI_CSR_INVALID: { meaning: 'the certificate signing request is malformed or its signature does not verify', httpStatus: 400, exitCode: 1 },
  PG_ERR_PKI_KEY_IN_USE: { meaning: 'the public key is already bound to another identity\'s certificate that is not revoked', httpStatus: 409, exitCode: 1 },
  PG_ERR_PKI_UNKNOWN_SERIAL: { meaning: 'no certificate with this serial number is in the inventory', httpStatus: 404, exitCode: 1 },
  PG_ERR_BROKER_TLS: { meaning: 'the broker TLS material (certificate, key, CA, CRL) cannot be loaded', httpStatus: 500, exitCode: 1 },
  PG_ERR_BROKER_LISTEN: { meaning: 'the broker cannot listen on the requested port', httpStatus: 500, exitCode: 1 },
  PG_ERR_BROKER_STATE: { meaning: 'the broker state database (<data-dir>/broker.db) cannot be opened', httpStatus: 500, exitCode: 1 },
  PG_ERR_API_LISTEN: { meaning: 'the HTTP API cannot listen on the requested port', httpStatus: 500, exitCode: 1 },
  PG_ERR_API_UNAUTHORIZED: { meaning: 'an API request carries no valid bearer token', httpStatus: 401, exitCode: 1 },
  PG_ERR_API_FORBIDDEN: { meaning: 'the token\'s role may not do this (operator actions need an operator token)', httpStatus: 403, exitCode: 1 },
  PG_ERR_API_NOT_FOUND: { meaning: 'no device or alert with that id', httpStatus: 404, exitCode: 1 },
  PG_ERR_API_CONFLICT: { meaning: 'the alert is not in a state that allows this action', httpStatus: 409, exitCode: 1 },
  PG_ERR_API_INTERNAL: { meaning: 'the API failed; the collector log says why', httpStatus: 500, exitCode: 1 },
  PG_ERR_API_RATE_LIMITED: { meaning: 'too many failed authentications from this address; retry after the Retry-After seconds', httpStatus: 429, exitCode: 1 },
  PG_ERR_AUDIT_UNAVAILABLE: { meaning: 'an operator action was refused, not carried out, because the audit trail cannot record it', httpStatus: 503, exitCode: 1 },
  PG_ERR_BROKER_UNREACHABLE: { meaning: 'a command cannot reach the running broker, or the broker refused it', httpStatus: 503, exitCode: 1 },
  PG_ERR_SCENARIO_INVALID: { meaning: 'a simulator scenario file is unreadable or does not match the schema', httpStatus: 400, exitCode: 2 },
  PG_ERR_SIM_BROKER: { meaning: 'the simulator cannot reach or use the broker', httpStatus: 503, exitCode: 1 },
  PG_ERR_POLICY_INVALID: { meaning: 'a policy file is unreadable, does not match the schema, or repeats a policy id', httpStatus: 422, exitCode: 1 },
  PG_ERR_SPOOL_FULL: { meaning: 'the collector spool reached its size bound; messages stay unacknowledged at the broker', httpStatus: 503, exitCode: 1 },
  PG_ERR_CLUSTER_UNREACHABLE: { meaning: 'the cluster\'s Redis (redisUrl) does not answer', httpStatus: 503, exitCode: 1 },
  PG_ERR_SPOOL_UNWRITABLE: { meaning: 'the collector cannot write its spool (disk full, I/O error); messages stay unacknowledged at the broker until it can', httpStatus: 503, exitCode: 1 },
  PG_ERR_DB_UNREACHABLE: { meaning: 'the collector group\'s PostgreSQL (databaseUrl) does not answer', httpStatus: 503, exitCode: 1 },
  PG_ERR_DB_MIGRATION_CHANGED: { meaning: 'a schema migration already applied to the database differs from this PlaceGuard\'s copy (its checksum), or a new one is numbered below an applied one', httpStatus: 500, exitCode: 1 },
  PG_ERR_DB_SCHEMA_NEWER: { meaning: 'the database has schema migrations this PlaceGuard does not know: a newer version migrated it', httpStatus: 500, exitCode: 1 },
  PG_ERR_DB_MIGRATION_FAILED: { meaning: 'a schema migration failed and was rolled back, or another process held the migration lock too long', httpStatus: 500, exitCode: 1 },
} as const satisfies Record<string, ErrorSpec>

export type ErrorCode = keyof typeof ERROR_CATALOGUE

/** An error a person can act on: a code, the field at fault and how to fix it. */
export class PlaceGuardError extends Error {
  readonly code: ErrorCode
  readonly field: string | undefined
  readonly hint: string | undefined

  constructor (code: ErrorCode, message: string, options: { field?: string, hint?: string, cause?: unknown } = {}) {
    super(message, { cause: options.cause })
    this.name = 'PlaceGuardError'
    this.code = code
    this.field = options.field
    this.hint = options.hint
  }

  /** The HTTP status the API answers this error with (fastify reads `statusCode`). */
  get statusCode (): number {
    return ERROR_CATALOGUE[this.code].httpStatus
  }

  /** The CLI's exit status for this error: 2 for bad input, 1 otherwise. */
  get exitCode (): number {
    return ERROR_CATALOGUE[this.code].exitCode
  }
}

export function invalidInput (field: string, message: string, hint?: string): PlaceGuardError {
  return new PlaceGuardError('PG_ERR_INPUT_INVALID', `${field}: ${message}`, { field, hint })
}
