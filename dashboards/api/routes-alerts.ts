import type { FastifyInstance, FastifyRequest } from 'fastify'
import { type AlertStatus, SEVERITIES, type Severity } from '../../shared/alert-contract.ts'
import type { AlertQuery as BookQuery } from '../../detection/index.ts'
import { PlaceGuardError } from '../../shared/errors.ts'
import { audited } from './audit-trail.ts'
import { pageSchema, pagingQuery } from './paging.ts'
import { alertSchema, errorSchema, idParams, notFound } from './schemas.ts'
import type { ApiSource } from './source.ts'

interface AlertQuery { status?: AlertStatus, severity?: Severity, policy?: string, deviceId?: string, site?: string, limit: number, cursor?: string }

const noteBody = { type: 'object', additionalProperties: false, properties: { comment: { type: 'string', minLength: 1, maxLength: 2000 } } } as const

function conflict (message: string): PlaceGuardError {
  return new PlaceGuardError('PG_ERR_API_CONFLICT', message)
}

/** Who acted, as recorded on the alert: the role and a fingerprint of the token (never the token). */
function actor (request: FastifyRequest): string {
  return request.auth!.name
}

export function registerAlertRoutes (app: FastifyInstance, source: ApiSource): void {
  app.get<{ Querystring: AlertQuery }>('/api/alerts', {
    config: { role: 'viewer' },
    schema: {
      summary: 'Alerts, newest first',
      querystring: {
        type: 'object', additionalProperties: false,
        properties: {
          ...pagingQuery,
          // An alert cursor carries a time and an id (keyset paging): longer than an offset.
          cursor: { type: 'string', maxLength: 128 },
          status: { type: 'string', enum: ['open', 'acknowledged', 'resolved'] },
          severity: { type: 'string', enum: [...SEVERITIES] },
          policy: { type: 'string', maxLength: 64 },
          deviceId: { type: 'string', maxLength: 100 },
          site: { type: 'string', maxLength: 64 },
        },
      },
      response: { 200: pageSchema(alertSchema), 400: errorSchema },
    },
  }, async (request) => {
    const { limit, cursor, ...filter } = request.query
    // Filtered, counted and paged in SQL by the alert book: a page parses only its own alerts; a bad cursor is a 400 by its code.
    return source.alerts.page(filter as BookQuery, limit, cursor)
  })

  app.get<{ Params: { id: string } }>('/api/alerts/:id', {
    config: { role: 'viewer' },
    schema: { summary: 'One alert', params: idParams, response: { 200: alertSchema, 404: errorSchema } },
  }, async (request) => await source.alerts.get(request.params.id) ?? Promise.reject(notFound('alert')))

  const act = (verb: 'ack' | 'resolve', action: string, summary: string, apply: (id: string, by: string) => ReturnType<ApiSource['acknowledge']>, allowed: AlertStatus[]): void => {
    app.post<{ Params: { id: string }, Body: { comment?: string } | undefined }>(`/api/alerts/:id/${verb}`, {
      config: { role: 'operator' },
      // A bare POST (no body) is an acknowledgement without a comment.
      preValidation: async (request) => { request.body ??= {} },
      schema: { summary, params: idParams, body: noteBody, response: { 200: alertSchema, 404: errorSchema, 409: errorSchema, 503: errorSchema } },
    }, audited(source, {
      action, subject: (request) => request.params.id, detail: (request) => request.body?.comment ? { comment: request.body.comment } : {},
    }, async (request) => {
      const { id } = request.params
      const alert = await source.alerts.get(id)
      if (!alert) throw notFound('alert')
      if (!allowed.includes(alert.status)) throw conflict(`the alert is ${alert.status}`)
      if (request.body?.comment) await source.comment(id, actor(request), request.body.comment)
      return apply(id, actor(request))
    }))
  }
  act('ack', 'alert.acknowledge', 'Acknowledge an open alert (operator)', (id, by) => source.acknowledge(id, by), ['open'])
  act('resolve', 'alert.resolve', 'Resolve an alert (operator)', (id, by) => source.resolve(id, by), ['open', 'acknowledged'])

  app.post<{ Params: { id: string }, Body: { text: string } }>('/api/alerts/:id/comments', {
    config: { role: 'operator' },
    schema: {
      summary: 'Add a note to an alert (operator)', params: idParams,
      body: { type: 'object', required: ['text'], additionalProperties: false, properties: { text: { type: 'string', minLength: 1, maxLength: 2000 } } },
      response: { 200: alertSchema, 404: errorSchema, 503: errorSchema },
    },
  }, audited(source, { action: 'alert.comment', subject: (request) => request.params.id, detail: (request) => ({ text: request.body.text }) },
    async (request) => await source.comment(request.params.id, actor(request), request.body.text) ?? Promise.reject(notFound('alert'))))
}
