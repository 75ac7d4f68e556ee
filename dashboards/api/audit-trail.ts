/**
 * The operator audit trail over the API (docs/audit-trail.md): every
 * operator action is recorded before it is carried out, and its outcome
 * after, in the trail the source hands in (audit/: `<data-dir>/audit.db`,
 * or the group's PostgreSQL); `GET /api/audit-trail` reads it back.
 *
 * Who acted is the token's role and fingerprint (auth.ts: `role:` and
 * eight hex digits of its SHA-256), never the token; from where is the
 * remote address. An action the trail cannot record is refused (503
 * PG_ERR_AUDIT_UNAVAILABLE) and not carried out: an operator action
 * nobody can account for is what the trail exists to prevent (STRIDE R,
 * repudiation). The outcome is written once the action is done; if that
 * write fails, the action stands (undoing it could fail too), the answer
 * says what happened, and the collector log says the outcome is missing —
 * the trail still shows the request.
 */
import { createHash } from 'node:crypto'
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteGenericInterface } from 'fastify'
import type { AuditEntry } from '../../audit/index.ts'
import { PlaceGuardError } from '../../shared/errors.ts'
import { pageSchema, pagingQuery } from './paging.ts'
import { errorSchema } from './schemas.ts'
import type { ApiSource } from './source.ts'

/** What an action tells the trail beyond its status: how many requeued, whether the policy was valid. */
export type AuditNote = (detail: Record<string, unknown>) => void

export interface AuditedAction<R extends RouteGenericInterface> {
  /** `room.verb`, as listed in docs/audit-trail.md. */
  action: string
  /** The alert id, device id or sink acted on; null for the whole (a policy reload). */
  subject: (request: FastifyRequest<R>) => string | null
  /** What the request asked, recorded with it (a comment's text; a policy file's digest, not the file). */
  detail?: (request: FastifyRequest<R>) => Record<string, unknown>
}

/** Error messages in the trail are bounded: a parse error can quote a whole policy file. */
const MESSAGE_CHARS = 500

/**
 * A route handler that records the request in the trail, runs `handler`,
 * then records its outcome: `done` (2xx), `refused` (4xx: not found, a
 * conflict, an invalid policy) or `failed` (5xx), with the status, the
 * error message, what the handler noted, and the seq of the request.
 */
export function audited<R extends RouteGenericInterface> (
  source: ApiSource, what: AuditedAction<R>, handler: (request: FastifyRequest<R>, reply: FastifyReply, note: AuditNote) => Promise<unknown>,
): (request: FastifyRequest<R>, reply: FastifyReply) => Promise<unknown> {
  return async (request, reply) => {
    const who = { actor: request.auth!.name, action: what.action, subject: what.subject(request), from: request.ip }
    let requested: AuditEntry
    try {
      requested = await source.auditTrail.append({ ...who, detail: { outcome: 'requested', ...what.detail?.(request) } })
    } catch (error) {
      request.log.error({ err: (error as Error).message, action: what.action, subject: who.subject }, 'audit trail: cannot record an operator action; refused it')
      return reply.code(503).send({ statusCode: 503, code: 'PG_ERR_AUDIT_UNAVAILABLE', error: 'Service Unavailable', message: 'the action was not carried out: the audit trail cannot record it (the collector log says why)' })
    }
    const noted: Record<string, unknown> = {}
    const outcome = async (status: number, message?: string): Promise<void> => {
      const detail = { outcome: status < 300 ? 'done' : status < 500 ? 'refused' : 'failed', status, request: requested.seq, ...noted, ...(message ? { error: message.slice(0, MESSAGE_CHARS) } : {}) }
      try {
        await source.auditTrail.append({ ...who, detail })
      } catch (error) {
        request.log.error({ err: (error as Error).message, action: what.action, subject: who.subject, request: requested.seq, outcome: detail.outcome }, 'audit trail: the action was carried out but its outcome could not be recorded')
      }
    }
    let result: unknown
    try {
      result = await handler(request, reply, (detail) => Object.assign(noted, detail))
    } catch (error) {
      const status = (error as PlaceGuardError).statusCode ?? 500
      await outcome(status, (error as Error).message)
      throw error
    }
    await outcome(reply.statusCode)
    return result
  }
}

/** A policy file is recorded by its size and digest: the trail says which file was checked without keeping it. */
export function fileDigest (text: string): { bytes: number, sha256: string } {
  return { bytes: Buffer.byteLength(text), sha256: createHash('sha256').update(text).digest('hex') }
}

const auditEntrySchema = {
  type: 'object',
  properties: {
    seq: { type: 'integer' }, at: { type: 'string' }, actor: { type: 'string', description: 'role:fingerprint of the token (never the token)' },
    action: { type: 'string' }, subject: { type: ['string', 'null'] }, from: { type: ['string', 'null'], description: 'remote address' },
    detail: { type: 'object', additionalProperties: true, description: 'outcome (requested, done, refused, failed), status, request (the seq of the request), and what the action noted' },
    prevHash: { type: 'string' }, hash: { type: 'string' },
  },
} as const

interface TrailQuery { limit: number, cursor?: string, order?: 'newest' | 'oldest', subject?: string }

export function registerAuditTrailRoutes (app: FastifyInstance, source: ApiSource): void {
  app.get<{ Querystring: TrailQuery }>('/api/audit-trail', {
    config: { role: 'operator' },
    schema: {
      summary: 'The operator audit trail: who did what, to which alert, device or sink, from where, and how it went (operator)',
      querystring: {
        type: 'object', additionalProperties: false,
        properties: {
          ...pagingQuery,
          order: { type: 'string', enum: ['newest', 'oldest'], default: 'newest' },
          subject: { type: 'string', maxLength: 100, description: 'an alert id, device id or sink' },
        },
      },
      response: { 200: pageSchema(auditEntrySchema), 400: errorSchema, 403: errorSchema },
    },
  }, async (request) => {
    const { limit, cursor, order, subject } = request.query
    const page = await source.auditTrail.page({ order, ...(subject === undefined ? {} : { subject }) }, limit, decodeSeq(cursor))
    return { items: page.items, total: page.total, next: page.last === null ? null : Buffer.from(JSON.stringify({ s: page.last })).toString('base64url') }
  })

  app.get('/api/audit-trail/verify', {
    config: { role: 'operator' },
    schema: {
      summary: 'Walk the trail\'s hash chain: intact, or the first seq where it breaks and why (edited, deleted, inserted, head-moved) (operator)',
      response: {
        200: {
          type: 'object',
          properties: { intact: { type: 'boolean' }, entries: { type: 'integer' }, brokenAt: { type: 'integer' }, reason: { type: 'string' }, message: { type: 'string' } },
        },
      },
    },
  }, async () => source.auditTrail.verify())
}

/** The keyset cursor: the last seq of the page before. */
function decodeSeq (cursor: string | undefined): number | undefined {
  if (!cursor) return undefined
  try {
    const { s } = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { s: unknown }
    if (Number.isSafeInteger(s) && (s as number) >= 0) return s as number
  } catch {
    // not base64url JSON: refused below like any other foreign cursor
  }
  throw new PlaceGuardError('PG_ERR_INPUT_INVALID', 'cursor: not a cursor this API gave out', { field: 'cursor' })
}
