/** Listens: the API and dashboard on host:port (`collector`, `up`). */
import type { Logger } from '../../shared/logger.ts'
import { PlaceGuardError } from '../../shared/errors.ts'
import { type ApiOptions, buildApi } from './app.ts'
import { DEFAULT_HTTP_CONNECTION_LIMITS } from './config.ts'
import { type HttpConnectionLimits, limitConnections } from './connection-limits.ts'
import type { ApiSource } from './source.ts'

export interface RunningApi { url: string, port: number, close: () => Promise<void> }

export async function startApiServer (source: ApiSource, options: { host: string, port: number, logger: Logger } & Partial<HttpConnectionLimits> & Omit<ApiOptions, 'logger'>): Promise<RunningApi> {
  if (source.tokens.length === 0) {
    options.logger.warn('no PLACEGUARD_API_TOKENS: the HTTP API answers /healthz and /readyz only; every other route needs a token')
  }
  const app = await buildApi(source, { logger: options.logger, rateLimitPerMinute: options.rateLimitPerMinute, authFailuresPerMinute: options.authFailuresPerMinute, clock: options.clock })
  limitConnections(app.server, {
    maxConnections: options.maxConnections ?? DEFAULT_HTTP_CONNECTION_LIMITS.maxConnections,
    maxConnectionsPerAddress: options.maxConnectionsPerAddress ?? DEFAULT_HTTP_CONNECTION_LIMITS.maxConnectionsPerAddress,
  }, options.logger)
  try {
    await app.listen({ host: options.host, port: options.port })
  } catch (error) {
    throw new PlaceGuardError('PG_ERR_API_LISTEN', `cannot listen on ${options.host}:${options.port}: ${(error as Error).message}`, { field: 'httpPort', cause: error })
  }
  const { port } = app.server.address() as { port: number }
  const host = options.host === '0.0.0.0' || options.host === '::' ? 'localhost' : options.host
  return { url: `http://${host}:${port}/`, port, close: () => app.close() }
}
