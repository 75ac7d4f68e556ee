/**
 * The HTTP API and the web dashboard (docs/product.md "HTTP API"), as a fastify
 * app: `buildApi(source)` builds it, the caller listens (fastify's app /
 * server split, so tests can use real HTTP or inject()).
 *
 * Secure by default: every /api route and /metrics need a bearer token
 * (PLACEGUARD_API_TOKENS; roles viewer < operator); /healthz and /readyz
 * are open for orchestrators. Security headers with a strict CSP (helmet),
 * no CORS (the dashboard is same-origin), a rate limit per token or
 * address, a limit on failed authentications per address, and request
 * bodies capped.
 */
import { join } from 'node:path'
import helmet from '@fastify/helmet'
import rateLimit from '@fastify/rate-limit'
import fastifyStatic from '@fastify/static'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify'
import pkg from '../../package.json' with { type: 'json' }
import type { Logger } from '../../shared/logger.ts'
import { systemClock, type Clock } from '../../shared/clock.ts'
import { AuthFailureLimiter } from './auth-failures.ts'
import { authenticate, type Authenticated } from './auth.ts'
import { registerAuditTrailRoutes } from './audit-trail.ts'
import { registerAdvisoryRoutes } from './routes-advisories.ts'
import { registerAlertRoutes } from './routes-alerts.ts'
import { registerDeviceRoutes } from './routes-devices.ts'
import { registerOperationsRoutes } from './routes-operations.ts'
import { registerMetrics } from './metrics.ts'
import type { ApiSource } from './source.ts'
import { registerStream } from './stream.ts'

declare module 'fastify' {
  interface FastifyRequest { auth?: Authenticated }
  interface FastifyContextConfig { role?: 'viewer' | 'operator' | 'open' }
}

export interface ApiOptions {
  logger: Logger
  /** Requests per minute per token (or address, for routes without one). */
  rateLimitPerMinute?: number
  /** Failed authentications per address per minute before it gets 429 (token brute force). */
  authFailuresPerMinute?: number
  clock?: Clock
}

const AUTH_FAILURE_WINDOW_MS = 60_000
/** Addresses whose failures are tracked at once (bounded; the oldest forgotten first). */
const AUTH_FAILURE_ADDRESSES = 10_000

const WEB_DIR = join(import.meta.dirname, '..', 'web')
const UPLOT_DIR = join(import.meta.dirname, '..', '..', 'node_modules', 'uplot', 'dist')

export async function buildApi (source: ApiSource, options: ApiOptions): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: options.logger.child({ component: 'api' }) as FastifyBaseLogger,
    // Request logs at debug: a dashboard polls, and info-level lines for each poll would drown the log.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 256 * 1024,
    // Unknown query or body fields are refused, not silently dropped: they are usually typos.
    ajv: { customOptions: { removeAdditional: false } },
    // Ids are [a-z0-9-]; nothing legitimate needs a longer path parameter.
    routerOptions: { maxParamLength: 100 },
  })
  await app.register(helmet, {
    contentSecurityPolicy: {
      directives: {
        defaultSrc: ["'self'"], scriptSrc: ["'self'"], styleSrc: ["'self'"], imgSrc: ["'self'", 'data:'], connectSrc: ["'self'"],
        objectSrc: ["'none'"], frameAncestors: ["'none'"], baseUri: ["'self'"], formAction: ["'self'"],
      },
    },
  })
  await app.register(rateLimit, {
    max: options.rateLimitPerMinute ?? 1_200,
    timeWindow: 60_000,
    // After authentication, so a token is limited as itself wherever it comes
    // from; a request without a valid token never gets this far (the
    // auth-failure limit below counts those).
    hook: 'preHandler',
    keyGenerator: (request) => request.auth?.name ?? request.ip,
    allowList: (request) => request.url === '/healthz' || request.url === '/readyz',
  })
  await app.register(swagger, {
    openapi: {
      info: { title: 'PlaceGuard API', version: pkg.version, description: 'Fleet state, alerts and operations of a PlaceGuard deployment.' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
  })
  await app.register(swaggerUi, { routePrefix: '/docs', staticCSP: true })

  const authFailures = new AuthFailureLimiter({
    maxFailures: options.authFailuresPerMinute ?? 20, windowMs: AUTH_FAILURE_WINDOW_MS, maxAddresses: AUTH_FAILURE_ADDRESSES, clock: options.clock ?? systemClock,
  })
  app.addHook('onRequest', async (request, reply) => {
    // Secure by default: anything under /api or /metrics needs a token unless its route says otherwise.
    const path = request.url.split('?')[0]!
    const needsToken = path.startsWith('/api/') || path === '/metrics' // not /api.js, the dashboard's own module
    const required = request.routeOptions.config.role ?? (needsToken ? 'viewer' : 'open')
    if (required === 'open') return
    const retryAfterMs = authFailures.retryAfterMs(request.ip)
    if (retryAfterMs > 0) {
      await reply.code(429).header('retry-after', String(Math.ceil(retryAfterMs / 1000))).send({ statusCode: 429, code: 'PG_ERR_API_RATE_LIMITED', error: 'Too Many Requests', message: 'too many failed authentications from this address; retry after the Retry-After seconds' })
      return reply
    }
    const auth = authenticate(request.headers.authorization, source.tokens)
    if (!auth) {
      authFailures.recordFailure(request.ip)
      await reply.code(401).header('www-authenticate', 'Bearer realm="placeguard"').send({ statusCode: 401, code: 'PG_ERR_API_UNAUTHORIZED', error: 'Unauthorized', message: 'a bearer token from PLACEGUARD_API_TOKENS is required' })
      return reply
    }
    request.auth = auth
    if (required === 'operator' && auth.role !== 'operator') {
      await reply.code(403).send({ statusCode: 403, code: 'PG_ERR_API_FORBIDDEN', error: 'Forbidden', message: 'this action needs an operator token' })
      return reply
    }
  })
  app.setErrorHandler((error: Error & { statusCode?: number, validation?: unknown, code?: string }, _request, reply) => {
    if (error.validation) {
      return reply.code(400).send({ statusCode: 400, code: 'PG_ERR_INPUT_INVALID', error: 'Bad Request', message: error.message })
    }
    const status = error.statusCode ?? 500
    if (status >= 500) app.log.error({ err: error.message }, 'API error')
    return reply.code(status).send({ statusCode: status, code: status >= 500 ? 'PG_ERR_API_INTERNAL' : error.code ?? 'PG_ERR_INPUT_INVALID', error: status >= 500 ? 'Internal Server Error' : 'Error', message: status >= 500 ? 'internal error' : error.message })
  })

  app.get('/healthz', { config: { role: 'open' }, schema: { hide: true } }, async () => ({ status: 'ok' }))
  app.get('/readyz', { config: { role: 'open' }, schema: { hide: true } }, async (_request, reply) => {
    const checks = source.ready()
    const ready = checks.broker && checks.store
    return reply.code(ready ? 200 : 503).send({ ready, checks })
  })
  app.get('/api/whoami', { config: { role: 'viewer' } }, async (request) => ({ role: request.auth!.role }))

  registerDeviceRoutes(app, source)
  registerAlertRoutes(app, source)
  registerOperationsRoutes(app, source, options.clock ?? systemClock)
  registerAuditTrailRoutes(app, source)
  registerAdvisoryRoutes(app, source)
  registerStream(app, source)
  registerMetrics(app, source)

  // The dashboard: static files, no build step; uPlot straight from its npm package.
  await app.register(fastifyStatic, { root: WEB_DIR, prefix: '/', index: 'index.html' })
  await app.register(fastifyStatic, { root: UPLOT_DIR, prefix: '/vendor/uplot/', decorateReply: false, allowedPath: (path) => path === '/uPlot.iife.min.js' || path === '/uPlot.min.css' })
  return app
}
