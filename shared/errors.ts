/**
 * The one catalogue of PlaceGuard error codes. Every error a user can see
 * carries one of these codes; docs/errors.md lists them (a test keeps the two in
 * step, as fastify does for FST_ERR_*).
 */
export const ERROR_CODES = {
  PG_ERR_CONFIG_INVALID: 'a configuration value is invalid',
  PG_ERR_INPUT_INVALID: 'a command-line argument or request field is invalid',
  PG_ERR_PKI_NO_CA: 'the fleet CA does not exist in the data directory',
  PG_ERR_PKI_CA_EXISTS: 'a fleet CA already exists and is never overwritten',
  PG_ERR_PKI_DUPLICATE_ID: 'an active certificate already exists for this device id',
  PG_ERR_PKI_UNKNOWN_DEVICE: 'no active certificate exists for this device id',
  PG_ERR_PKI_CSR_INVALID: 'the certificate signing request is malformed or its signature does not verify',
  PG_ERR_PKI_KEY_IN_USE: 'the public key is already bound to another identity\'s certificate that is not revoked',
  PG_ERR_PKI_UNKNOWN_SERIAL: 'no certificate with this serial number is in the inventory',
  PG_ERR_BROKER_TLS: 'the broker TLS material (certificate, key, CA, CRL) cannot be loaded',
  PG_ERR_BROKER_LISTEN: 'the broker cannot listen on the requested port',
  PG_ERR_BROKER_STATE: 'the broker state database (<data-dir>/broker.db) cannot be opened',
  PG_ERR_API_LISTEN: 'the HTTP API cannot listen on the requested port',
  PG_ERR_API_UNAUTHORIZED: 'an API request carries no valid bearer token',
  PG_ERR_API_FORBIDDEN: 'the token\'s role may not do this (operator actions need an operator token)',
  PG_ERR_API_NOT_FOUND: 'no device or alert with that id',
  PG_ERR_API_CONFLICT: 'the alert is not in a state that allows this action',
  PG_ERR_API_INTERNAL: 'the API failed; the collector log says why',
  PG_ERR_API_RATE_LIMITED: 'too many failed authentications from this address; retry after the Retry-After seconds',
  PG_ERR_BROKER_UNREACHABLE: 'a command cannot reach the running broker, or the broker refused it',
  PG_ERR_SCENARIO_INVALID: 'a simulator scenario file is unreadable or does not match the schema',
  PG_ERR_SIM_BROKER: 'the simulator cannot reach or use the broker',
  PG_ERR_POLICY_INVALID: 'a policy file is unreadable, does not match the schema, or repeats a policy id',
  PG_ERR_SPOOL_FULL: 'the collector spool reached its size bound; messages stay unacknowledged at the broker',
  PG_ERR_SPOOL_UNWRITABLE: 'the collector cannot write its spool (disk full, I/O error); messages stay unacknowledged at the broker until it can',
} as const

export type ErrorCode = keyof typeof ERROR_CODES

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
}

export function invalidInput (field: string, message: string, hint?: string): PlaceGuardError {
  return new PlaceGuardError('PG_ERR_INPUT_INVALID', `${field}: ${message}`, { field, hint })
}
