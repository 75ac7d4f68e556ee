/* eslint-disable @typescript-eslint/no-explicit-any -- response bodies are JSON whose shape the assertions check */
/**
 * Every route of the HTTP API, through fastify's inject() over a source
 * built in memory (test/helpers/api-source.ts: the real Detection,
 * FleetState and Outbox, fed as the collector feeds them). No broker, no
 * TLS, no simulator; api-stack.test.ts proves the same API over a running
 * collector and real HTTP.
 */
import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildApi } from '../../dashboards/api/app.ts'
import type { DeviceKind } from '../../shared/ids.ts'
import { createLogger } from '../../shared/logger.ts'
import { apiSourceForTest, type TestApiSource, type TestDevice } from '../helpers/api-source.ts'

const OPERATOR = 'operator-token-0123456789abcdef'
const VIEWER = 'viewer-token-0123456789abcdef'
const SITES = ['riverside', 'northgate', 'harbour', 'old-town']
/** Four devices of each kind that have reported (flood-00002 on outdated firmware), and one in the inventory never seen. */
const FLEET: TestDevice[] = [
  ...(['flood', 'energy', 'housing'] as DeviceKind[]).flatMap((kind) => [1, 2, 3, 4].map((n) => ({
    id: `${kind}-0000${n}`, kind, site: SITES[n % SITES.length]!, ...(kind === 'flood' && n === 2 ? { fw: '2.9.0' } : {}),
  }))),
  { id: 'housing-99999', kind: 'housing', site: 'old-town', samples: 0 },
]
let api: TestApiSource
let app: FastifyInstance

beforeAll(async () => {
  api = apiSourceForTest({
    tokens: [{ token: OPERATOR, role: 'operator' }, { token: VIEWER, role: 'viewer' }],
    devices: FLEET,
    // What the broker and the collector report of the incidents: a wildcard subscription, a payload that failed its schema.
    events: [
      { type: 'acl-denied', deviceId: 'flood-00001', kind: 'flood', site: 'northgate', remoteAddress: '127.0.0.1:50001', reason: 'subscribe outside own topics', topic: 'places/#' },
      { type: 'payload-invalid', deviceId: 'energy-00001', kind: 'energy', site: 'northgate', reason: 'invalid telemetry: not JSON', topic: 'places/northgate/energy/energy-00001/telemetry' },
    ],
  })
  // This file's many deliberate 401s all come from one address; the failed-authentication limit has its own test.
  app = await buildApi(api.source, { logger: createLogger({ level: 'silent' }), authFailuresPerMinute: 1_000 })
})
afterAll(async () => {
  await app?.close()
  await api?.close()
})

async function call (path: string, options: { token?: string | null, method?: string, body?: unknown, headers?: Record<string, string> } = {}): Promise<{ status: number, body: any, headers: Headers, text: string }> {
  const token = options.token === undefined ? VIEWER : options.token
  const response = await app.inject({
    method: (options.method ?? 'GET') as 'GET',
    url: path,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(options.body !== undefined ? { 'content-type': 'application/json' } : {}), ...options.headers },
    ...(options.body !== undefined ? { payload: JSON.stringify(options.body) } : {}),
  })
  let body: unknown
  try { body = JSON.parse(response.body) } catch { body = undefined }
  const headers = new Headers()
  for (const [name, value] of Object.entries(response.headers)) for (const one of [value ?? []].flat()) headers.append(name, String(one))
  return { status: response.statusCode, body, headers, text: response.body }
}

describe('authentication and authorisation', () => {
  it.each(['/api/devices', '/api/devices/flood-00001', '/api/alerts', '/api/fleet', '/api/audit', '/api/policies', '/api/delivery', '/api/quarantine', '/api/whoami', '/metrics'])(
    '%s refuses a request without a token or with a wrong one (401), and answers a viewer', async (path) => {
      const missing = await call(path, { token: null })
      expect(missing.status).toBe(401)
      expect(missing.body).toMatchObject({ code: 'PG_ERR_API_UNAUTHORIZED' })
      expect(missing.headers.get('www-authenticate')).toMatch(/^Bearer/)
      expect((await call(path, { token: 'x'.repeat(30) })).status).toBe(401)
      expect((await call(path)).status).toBe(200)
    })

  it.each([
    ['POST', '/api/alerts/00000000-0000-0000-0000-000000000000/ack', {}],
    ['POST', '/api/alerts/00000000-0000-0000-0000-000000000000/resolve', {}],
    ['POST', '/api/alerts/00000000-0000-0000-0000-000000000000/comments', { text: 'x' }],
    ['POST', '/api/policies/validate', { yaml: 'policies: []' }],
    ['POST', '/api/policies/reload', undefined],
    ['DELETE', '/api/quarantine/flood-00001', undefined],
    ['POST', '/api/delivery/requeue', {}],
  ])('%s %s needs an operator (403 for a viewer)', async (method, path, body) => {
    const viewer = await call(path, { method, body })
    expect(viewer.status).toBe(403)
    expect(viewer.body).toMatchObject({ code: 'PG_ERR_API_FORBIDDEN' })
    expect((await call(path, { method, body, token: null })).status).toBe(401)
  })

  it('asks for a token before it says whether an /api route exists', async () => {
    expect((await call('/api/nothing-here', { token: null })).status).toBe(401)
    expect((await call('/api/nothing-here')).status).toBe(404)
    // The dashboard's own files are open, whatever their names begin with.
    expect((await call('/api.js', { token: null })).status).toBe(200)
  })

  it('says who the token is, and /healthz and /readyz are open', async () => {
    expect((await call('/api/whoami', { token: OPERATOR })).body).toEqual({ role: 'operator' })
    expect((await call('/api/whoami')).body).toEqual({ role: 'viewer' })
    expect(await call('/healthz', { token: null })).toMatchObject({ status: 200, body: { status: 'ok' } })
    expect(await call('/readyz', { token: null })).toMatchObject({ status: 200, body: { ready: true, checks: { broker: true, store: true } } })
    api.readiness.store = false // the spool near its bound
    try {
      expect(await call('/readyz', { token: null })).toMatchObject({ status: 503, body: { ready: false, checks: { broker: true, store: false } } })
    } finally {
      api.readiness.store = true
    }
  })
})

describe('devices', () => {
  it('pages through the whole fleet: every device once, totals consistent', async () => {
    const seen: string[] = []
    let cursor: string | null = null
    let pages = 0
    do {
      const { body }: { body: any } = await call(`/api/devices?limit=5${cursor ? `&cursor=${cursor}` : ''}`)
      expect(body.total).toBe(13)
      seen.push(...body.items.map((d: { id: string }) => d.id))
      cursor = body.next
      pages++
    } while (cursor)
    expect(pages).toBe(3)
    expect(seen).toHaveLength(13)
    expect(new Set(seen).size).toBe(13)
    expect(seen).toEqual([...seen].sort())
  })

  it('filters, searches and sorts', async () => {
    const floods = (await call('/api/devices?kind=flood')).body
    expect(floods.total).toBe(4)
    expect(floods.items.every((d: { kind: string }) => d.kind === 'flood')).toBe(true)
    expect((await call('/api/devices?q=energy-0000')).body.total).toBe(4)
    expect((await call('/api/devices?health=never-seen')).body.items.map((d: { id: string }) => d.id)).toEqual(['housing-99999'])
    expect((await call('/api/devices?firmware=2.9.0')).body.items.map((d: { id: string }) => d.id)).toEqual(['flood-00002'])
    expect((await call('/api/devices?certExpiringDays=400')).body.total).toBe(13)
    expect((await call('/api/devices?certExpiringDays=30')).body.total).toBe(0)
    const ids = (await call('/api/devices?limit=100')).body.items.map((d: { id: string }) => d.id) as string[]
    const desc = (await call('/api/devices?sort=id&order=desc&limit=2')).body.items.map((d: { id: string }) => d.id)
    expect(desc).toEqual([...ids].sort().reverse().slice(0, 2))
    const alerting = (await call('/api/devices?sort=health&limit=13')).body.items
    expect(alerting.map((d: { health: string }) => d.health).at(-1)).toBe('never-seen')
  })

  it('refuses bad queries with 400 naming the problem', async () => {
    for (const query of ['limit=0', 'limit=501', 'health=fine', 'kind=toaster', 'sort=colour', 'cursor=notacursor', 'connected=maybe', 'bogus=1']) {
      const { status, body } = await call(`/api/devices?${query}`)
      expect(status, query).toBe(400)
      expect(body.code, query).toBe('PG_ERR_INPUT_INVALID')
    }
  })

  it('shows one device with certificate, firmware, rate, alerts and recent telemetry; 404 for an unknown one', async () => {
    const { status, body } = await call('/api/devices/flood-00002')
    expect(status).toBe(200)
    expect(body).toMatchObject({ id: 'flood-00002', kind: 'flood', firmware: '2.9.0', certificate: { keyAlgorithm: 'ecdsa-p256', status: 'active' }, quarantine: null })
    expect(body.alerts.map((a: { policy: string }) => a.policy)).toContain('firmware-outdated')
    expect(body.telemetry.length).toBeGreaterThan(3)
    expect(Object.keys(body.telemetry[0].readings).sort()).toEqual(['battery_v', 'level_cm'])
    expect(body.rate.baselinePerMinute).toBeGreaterThan(0)
    expect((await call('/api/devices/flood-77777')).status).toBe(404)
    expect((await call('/api/devices/%3Cscript%3E')).status).toBe(400)
  })
})

describe('alerts', () => {
  it('lists and filters, acknowledges, comments and resolves, with the lifecycle enforced', async () => {
    const all = (await call('/api/alerts')).body
    expect(all.total).toBeGreaterThanOrEqual(3)
    const acl = (await call('/api/alerts?policy=acl-violation&status=open')).body.items[0]
    expect(acl).toMatchObject({ deviceId: 'flood-00001', severity: 'high', status: 'open', comments: [] })
    expect((await call('/api/alerts?severity=high')).body.items.every((a: { severity: string }) => a.severity === 'high')).toBe(true)
    expect((await call(`/api/alerts/${acl.id}`)).body.id).toBe(acl.id)

    const acked = await call(`/api/alerts/${acl.id}/ack`, { method: 'POST', token: OPERATOR, body: { comment: 'looking at it, INC-7' } })
    expect(acked.status).toBe(200)
    expect(acked.body).toMatchObject({ status: 'acknowledged', acknowledgedBy: expect.stringMatching(/^operator:[0-9a-f]{8}$/), comments: [{ text: 'looking at it, INC-7' }] })
    expect(JSON.stringify(acked.body)).not.toContain(OPERATOR)
    expect((await call(`/api/alerts/${acl.id}/ack`, { method: 'POST', token: OPERATOR, body: {} })).status).toBe(409)
    expect((await call(`/api/alerts/${acl.id}/comments`, { method: 'POST', token: OPERATOR, body: { text: 'device re-flashed' } })).body.comments).toHaveLength(2)
    expect((await call(`/api/alerts/${acl.id}/comments`, { method: 'POST', token: OPERATOR, body: { text: '' } })).status).toBe(400)
    expect((await call(`/api/alerts/${acl.id}/comments`, { method: 'POST', token: OPERATOR, body: { text: 'x'.repeat(2001) } })).status).toBe(400)
    const resolved = await call(`/api/alerts/${acl.id}/resolve`, { method: 'POST', token: OPERATOR })
    expect(resolved.body).toMatchObject({ status: 'resolved' })
    expect((await call(`/api/alerts/${acl.id}/resolve`, { method: 'POST', token: OPERATOR })).status).toBe(409)
    expect((await call('/api/alerts/00000000-0000-0000-0000-000000000000/ack', { method: 'POST', token: OPERATOR, body: {} })).status).toBe(404)
  })

  it('pages alerts with a cursor', async () => {
    const first = (await call('/api/alerts?limit=1')).body
    expect(first.items).toHaveLength(1)
    const second = (await call(`/api/alerts?limit=1&cursor=${first.next}`)).body
    expect(second.items[0].id).not.toBe(first.items[0].id)
  })
})

describe('fleet, audit, policies, quarantine, delivery', () => {
  it('summarises the fleet by kind and site', async () => {
    const { body } = await call('/api/fleet')
    expect(body).toMatchObject({ devices: 13, neverSeen: 1 })
    expect(body.byHealth['never-seen']).toBe(1)
    expect(Object.values(body.byHealth as Record<string, number>).reduce((n, count) => n + count, 0)).toBe(13)
    expect(body.byKind.flood.total).toBe(4)
    expect(Object.values(body.bySite as Record<string, { total: number }>).reduce((n, s) => n + s.total, 0)).toBe(13)
    // Connection state follows the broker's events.
    api.event({ type: 'connect', deviceId: 'housing-99999', kind: 'housing', site: 'old-town', remoteAddress: '127.0.0.1:50002', reason: 'connected' })
    expect((await call('/api/fleet')).body.connected).toBe(1)
    expect((await call('/api/devices?connected=true')).body.items.map((d: { id: string }) => d.id)).toEqual(['housing-99999'])
    api.event({ type: 'disconnect', deviceId: 'housing-99999', kind: 'housing', site: 'old-town', remoteAddress: '127.0.0.1:50002', reason: 'client closed the connection' })
    expect((await call('/api/fleet')).body.connected).toBe(0)
    expect(body.openAlerts.high + body.openAlerts.medium + body.openAlerts.low + body.openAlerts.critical + body.openAlerts.info).toBeGreaterThanOrEqual(2)
  })

  it('audits posture: failing checks name their devices', async () => {
    const { body } = await call('/api/audit')
    const check = (id: string) => body.checks.find((c: { check: string }) => c.check === id)
    expect(check('never-seen')).toMatchObject({ status: 'fail', count: 1, devices: ['housing-99999'] })
    expect(check('firmware-outdated')).toMatchObject({ status: 'fail', devices: ['flood-00002'] })
    expect(check('certificate-expired')).toMatchObject({ status: 'pass', count: 0 })
    expect(body.firmware).toContainEqual({ kind: 'flood', version: '2.9.0', devices: 1 })
  })

  it('shows policies, validates a file without applying it, and reloads', async () => {
    const { body } = await call('/api/policies')
    expect(body.policies.map((p: { id: string }) => p.id)).toContain('cert-expiry')
    expect(body.policies[0].file).toMatch(/^[a-z-]+\.yaml$/)
    expect((await call('/api/policies/validate', { method: 'POST', token: OPERATOR, body: { yaml: 'policies:\n  - { id: replay, severity: high }\n' } })).body).toEqual({ valid: true })
    const bad = await call('/api/policies/validate', { method: 'POST', token: OPERATOR, body: { yaml: 'policies:\n  - id: replay\n    severity: urgent\n' } })
    expect(bad.body).toMatchObject({ valid: false, error: expect.stringMatching(/:3: policies\.0\.severity/) })
    // As many as the listing shows: every shipped policy, reloaded.
    expect((await call('/api/policies/reload', { method: 'POST', token: OPERATOR })).body).toMatchObject({ reloaded: true, policies: body.policies.length })
    expect(body.policies.length).toBe(api.detection.policySet.policies.length)
  })

  it('lifts a quarantine: the command goes to the broker, and the fleet follows the broker\'s event', async () => {
    await api.detection.quarantine('flood-00003', 3_600_000, 'test', 'alice')
    expect(api.fleet.quarantineOf('flood-00003')).toMatchObject({ by: 'alice' })
    expect((await call('/api/quarantine')).body.items).toEqual([expect.objectContaining({ deviceId: 'flood-00003', by: 'alice' })])
    expect((await call('/api/devices/flood-00003')).body).toMatchObject({ health: 'quarantined', quarantine: { by: 'alice' } })
    const lift = await call('/api/quarantine/flood-00003', { method: 'DELETE', token: OPERATOR })
    expect(lift).toMatchObject({ status: 202, body: { lifted: 'flood-00003' } })
    expect(api.commands.at(-1)).toEqual({ action: 'lift', deviceId: 'flood-00003', by: expect.stringMatching(/^operator:[0-9a-f]{8}$/) })
    expect(api.fleet.quarantineOf('flood-00003')).toBeNull()
    expect((await call('/api/quarantine')).body.items).toEqual([])
    expect((await call('/api/quarantine/Bad_Id', { method: 'DELETE', token: OPERATOR })).status).toBe(400)
    api.readiness.broker = false // the collector's session is down: the command cannot be sent
    try {
      expect(await call('/api/quarantine/flood-00003', { method: 'DELETE', token: OPERATOR })).toMatchObject({ status: 503, body: { code: 'PG_ERR_BROKER_UNREACHABLE' } })
    } finally {
      api.readiness.broker = true
    }
  })

  it('shows delivery state and re-queues dead letters', async () => {
    expect((await call('/api/delivery')).body).toEqual({ sinks: [], deadLetters: [] })
    expect((await call('/api/delivery/requeue', { method: 'POST', token: OPERATOR, body: {} })).body).toEqual({ requeued: 0 })
  })
})

describe('live stream, metrics, docs, dashboard, headers', () => {
  it('streams the fleet summary and alert changes as server-sent events', async () => {
    const response = await app.inject({ url: '/api/stream', headers: { authorization: `Bearer ${VIEWER}` }, payloadAsStream: true })
    expect(response.headers['content-type']).toMatch(/^text\/event-stream/)
    const chunks = response.stream()[Symbol.asyncIterator]()
    let text = ''
    const readUntil = async (pattern: RegExp): Promise<void> => {
      while (!pattern.test(text)) {
        const { value, done } = await chunks.next()
        if (done) throw new Error(`the stream ended before ${pattern}; it said: ${text}`)
        text += String(value)
      }
    }
    await readUntil(/event: fleet\ndata: \{"devices":13/)
    const alert = (await api.detection.alerts.list({ status: 'open' }))[0]!
    await call(`/api/alerts/${alert.id}/ack`, { method: 'POST', token: OPERATOR, body: {} })
    await readUntil(new RegExp(`event: alert\\ndata: \\{"change":"acknowledged","alert":\\{[^\\n]*"id":"${alert.id}"`))
    expect((await call('/api/stream', { token: null })).status).toBe(401)
  })

  it('exposes Prometheus metrics with the placeguard_ prefix and no per-device labels', async () => {
    const { text, headers } = await call('/metrics')
    expect(headers.get('content-type')).toMatch(/^text\/plain/)
    expect(text).toMatch(/^placeguard_messages_received_total [1-9]\d*$/m)
    expect(text).toMatch(/^placeguard_devices\{health="never-seen"\} 1$/m)
    expect(text).toMatch(/^placeguard_alerts_open\{severity="high"\} \d+$/m)
    expect(text).toMatch(/^placeguard_process_cpu_seconds_total /m)
    expect(text).not.toMatch(/flood-0000|energy-0000|housing-0000/)
  })

  it('publishes an OpenAPI document and its UI', async () => {
    const { body } = await call('/docs/json', { token: null })
    expect(body.openapi).toMatch(/^3\./)
    for (const path of ['/api/devices', '/api/devices/{id}', '/api/alerts', '/api/alerts/{id}/ack', '/api/alerts/{id}/resolve', '/api/fleet', '/api/audit', '/api/policies', '/api/stream']) {
      expect(Object.keys(body.paths), path).toContain(path)
    }
    expect((await call('/docs', { token: null })).status).toBe(200)
  })

  it('serves the dashboard with security headers, and no CORS', async () => {
    const page = await call('/', { token: null, headers: { origin: 'https://evil.example' } })
    expect(page.status).toBe(200)
    expect(page.text).toMatch(/<html/i)
    expect(page.headers.get('content-security-policy')).toMatch(/default-src 'self'.*script-src 'self'/)
    expect(page.headers.get('x-content-type-options')).toBe('nosniff')
    expect(page.headers.get('access-control-allow-origin')).toBeNull()
    const preflight = await call('/api/devices', { method: 'OPTIONS', token: null, headers: { origin: 'https://evil.example', 'access-control-request-method': 'GET' } })
    expect(preflight.headers.get('access-control-allow-origin')).toBeNull()
    expect((await call('/vendor/uplot/uPlot.iife.min.js', { token: null })).status).toBe(200)
    expect((await call('/vendor/uplot/package.json', { token: null })).status).toBe(404)
  })

  it('judges the audit on the API\'s clock: in 2040 every certificate of the fleet has expired', async () => {
    const at = Date.parse('2040-01-01T00:00:00Z')
    const app = await buildApi(api.source, { logger: createLogger({ level: 'silent' }), clock: { now: () => at } })
    try {
      const audit = (await app.inject({ url: '/api/audit', headers: { authorization: `Bearer ${VIEWER}` } })).json<{ generatedAt: string, devices: number, checks: Array<{ check: string, count: number }> }>()
      expect(audit.generatedAt).toBe('2040-01-01T00:00:00.000Z')
      const expired = audit.checks.find((c) => c.check === 'certificate-expired')!
      expect(expired.count).toBeGreaterThan(0)
      expect(expired.count).toBe(api.fleet.list({}, 'id', 'asc', Number.MAX_SAFE_INTEGER).items.filter((d) => api.fleet.certificateOf(d.id) !== null).length)
    } finally {
      await app.close()
    }
  })

  it('rate-limits a client that floods the API (429)', async () => {
    const app = await buildApi(api.source, { logger: createLogger({ level: 'silent' }), rateLimitPerMinute: 5 })
    try {
      const statuses: number[] = []
      for (let i = 0; i < 7; i++) statuses.push((await app.inject({ url: '/api/fleet', headers: { authorization: `Bearer ${VIEWER}` } })).statusCode)
      expect(statuses).toEqual([200, 200, 200, 200, 200, 429, 429])
      expect((await app.inject({ url: '/healthz' })).statusCode).toBe(200)
    } finally {
      await app.close()
    }
  })
})
