import type { FastifyInstance } from 'fastify'
import type { Clock } from '../../shared/clock.ts'
import { errorSchema } from './schemas.ts'
import type { ApiSource } from './source.ts'
import { auditReport } from './audit.ts'
import { audited, fileDigest } from './audit-trail.ts'

const anyObject = { type: 'object', additionalProperties: true } as const

export function registerOperationsRoutes (app: FastifyInstance, source: ApiSource, clock: Clock): void {
  app.get('/api/fleet', {
    config: { role: 'viewer' },
    schema: { summary: 'Fleet summary: devices, connected, silent, quarantined, never seen; by kind and site; open alerts by severity', response: { 200: anyObject } },
  }, async () => source.fleet.summary())

  app.get('/api/audit', {
    config: { role: 'viewer' },
    schema: { summary: 'Posture audit (in the spirit of AWS IoT Device Defender): certificates, firmware, shared and revoked identities, devices never seen', response: { 200: anyObject } },
  }, async () => auditReport(source, clock))

  app.get('/api/policies', {
    config: { role: 'viewer' },
    schema: { summary: 'Policies in force, with their files, and the maintenance windows and suppressions', response: { 200: anyObject } },
  }, async () => {
    const { policies, windows } = source.policies()
    return { policies: policies.map(({ policy, file }) => ({ ...policy, file: file.split('/').pop() })), windows }
  })

  app.post<{ Body: { yaml: string } }>('/api/policies/validate', {
    config: { role: 'operator' },
    schema: {
      summary: 'Check a policy file before saving it (nothing is applied)',
      body: { type: 'object', required: ['yaml'], additionalProperties: false, properties: { yaml: { type: 'string', maxLength: 200_000 } } },
      response: { 200: { type: 'object', properties: { valid: { type: 'boolean' }, error: { type: 'string' } } }, 503: errorSchema },
    },
  }, audited(source, { action: 'policy.validate', subject: () => null, detail: (request) => fileDigest(request.body.yaml) }, async (request, _reply, note) => {
    const result = source.validatePolicy(request.body.yaml)
    note(result.valid ? { valid: true } : { valid: false, error: result.error.slice(0, 500) })
    return result
  }))

  app.post('/api/policies/reload', {
    config: { role: 'operator' },
    schema: { summary: 'Re-read the policy directory now (it is also watched); a broken file leaves the policies in force', response: { 200: anyObject, 422: errorSchema, 503: errorSchema } },
  }, audited(source, { action: 'policy.reload', subject: () => null }, async (_request, reply, note) => {
    if (!source.reloadPolicies()) {
      return reply.code(422).send({ statusCode: 422, code: 'PG_ERR_POLICY_INVALID', error: 'Unprocessable Entity', message: 'the policy files are invalid; the policies in force stay in force (see the collector log)' })
    }
    const policies = source.policies().policies.length
    note({ policies })
    return { reloaded: true, policies }
  }))

  app.get('/api/quarantine', {
    config: { role: 'viewer' },
    schema: { summary: 'Devices quarantined now', response: { 200: anyObject } },
  }, async () => ({ items: source.fleet.list({ health: 'quarantined' }, 'id', 'asc', 10_000).items.map((device) => ({ deviceId: device.id, ...source.fleet.quarantineOf(device.id) })) }))

  app.delete<{ Params: { deviceId: string } }>('/api/quarantine/:deviceId', {
    config: { role: 'operator' },
    schema: {
      summary: 'Lift a device\'s quarantine (operator); the broker confirms with a quarantine-lifted event',
      params: { type: 'object', required: ['deviceId'], properties: { deviceId: { type: 'string', pattern: '^[a-z0-9-]{1,64}$' } } },
      response: { 202: anyObject, 503: errorSchema },
    },
  }, audited(source, { action: 'quarantine.lift', subject: (request) => request.params.deviceId }, async (request, reply, note) => {
    try {
      await source.liftQuarantine(request.params.deviceId, request.auth!.name)
    } catch (error) {
      note({ error: (error as Error).message })
      return reply.code(503).send({ statusCode: 503, code: 'PG_ERR_BROKER_UNREACHABLE', error: 'Service Unavailable', message: (error as Error).message })
    }
    return reply.code(202).send({ lifted: request.params.deviceId })
  }))

  app.get('/api/delivery', {
    config: { role: 'viewer' },
    schema: { summary: 'SOC sinks: delivered, pending, retries, latency; and the dead-letter list', response: { 200: anyObject } },
  }, async () => ({ sinks: await source.delivery.metrics(), deadLetters: await source.delivery.deadLetters() }))

  app.post<{ Body: { sink?: string } | undefined }>('/api/delivery/requeue', {
    config: { role: 'operator' },
    schema: {
      summary: 'Send dead letters again (all, or one sink\'s), with their delivery ids',
      body: { type: 'object', additionalProperties: false, properties: { sink: { type: 'string', maxLength: 32 } } },
      response: { 200: anyObject, 503: errorSchema },
    },
  }, audited(source, { action: 'delivery.requeue', subject: (request) => request.body?.sink ?? null }, async (request, _reply, note) => {
    const requeued = await source.delivery.requeue(request.body?.sink)
    note({ requeued })
    return { requeued }
  }))
}
