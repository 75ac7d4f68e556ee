/* eslint-disable @typescript-eslint/no-explicit-any -- response bodies are JSON whose shape the assertions check */
/**
 * The operator audit trail through the API (dashboards/api/audit-trail.ts),
 * by inject() over the in-memory source (test/helpers/api-source.ts), whose
 * trail is a real SqliteAuditStore in its temporary directory: a scripted
 * shift of two operators lands in the trail in order, each action with
 * who (the token's fingerprint, never the token), what, on which subject,
 * from where and how it went; only operators read it; and an action the
 * trail cannot record is refused and not carried out.
 */
import { createHash } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildApi } from '../../dashboards/api/app.ts'
import { createLogger } from '../../shared/logger.ts'
import { apiSourceForTest, type TestApiSource } from '../helpers/api-source.ts'

const ALICE = 'alice-operator-token-0123456789'
const BOB = 'bob-operator-token-9876543210ab'
const VIEWER = 'viewer-token-0123456789abcdef'
const TOKENS = [{ token: ALICE, role: 'operator' as const }, { token: BOB, role: 'operator' as const }, { token: VIEWER, role: 'viewer' as const }]
const fingerprint = (token: string) => `operator:${createHash('sha256').update(token).digest('hex').slice(0, 8)}`

async function sourceAndApi (): Promise<{ api: TestApiSource, app: FastifyInstance, call: (path: string, token: string | null, method?: string, body?: unknown) => Promise<{ status: number, body: any }> }> {
  const api = apiSourceForTest({
    tokens: TOKENS,
    devices: [{ id: 'flood-00001', kind: 'flood', site: 'riverside' }, { id: 'energy-00001', kind: 'energy', site: 'northgate' }],
    events: [
      { type: 'acl-denied', deviceId: 'flood-00001', kind: 'flood', site: 'riverside', remoteAddress: '127.0.0.1:50001', reason: 'subscribe outside own topics', topic: 'places/#' },
      { type: 'payload-invalid', deviceId: 'energy-00001', kind: 'energy', site: 'northgate', reason: 'invalid telemetry: not JSON', topic: 'places/northgate/energy/energy-00001/telemetry' },
    ],
  })
  const app = await buildApi(api.source, { logger: createLogger({ level: 'silent' }), authFailuresPerMinute: 1_000 })
  const call = async (path: string, token: string | null, method = 'GET', body?: unknown) => {
    const response = await app.inject({
      method: method as 'GET', url: path,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { payload: JSON.stringify(body) } : {}),
    })
    return { status: response.statusCode, body: JSON.parse(response.body || 'null') as unknown }
  }
  return { api, app, call }
}

describe('the operator audit trail over the API', () => {
  let api: TestApiSource
  let app: FastifyInstance
  let call: Awaited<ReturnType<typeof sourceAndApi>>['call']
  beforeAll(async () => { ({ api, app, call } = await sourceAndApi()) })
  afterAll(async () => {
    await app?.close()
    await api?.close()
  })

  it('records a scripted shift of two operators in order: who, what, which subject, from where, and how it went', async () => {
    const acl = (await call('/api/alerts?policy=acl-violation', VIEWER)).body.items[0].id as string
    const payload = (await call('/api/alerts?policy=payload-invalid', VIEWER)).body.items[0].id as string
    await api.detection.quarantine('flood-00001', 3_600_000, 'test', 'detection')

    expect((await call(`/api/alerts/${acl}/ack`, ALICE, 'POST', { comment: 'looking, INC-7' })).status).toBe(200)
    expect((await call(`/api/alerts/${acl}/ack`, BOB, 'POST', {})).status).toBe(409)
    expect((await call(`/api/alerts/${payload}/comments`, BOB, 'POST', { text: 'firmware bug, vendor told' })).status).toBe(200)
    expect((await call(`/api/alerts/${acl}/resolve`, ALICE, 'POST')).status).toBe(200)
    expect((await call('/api/alerts/00000000-0000-0000-0000-000000000000/resolve', BOB, 'POST')).status).toBe(404)
    expect((await call('/api/quarantine/flood-00001', ALICE, 'DELETE')).status).toBe(202)
    expect((await call('/api/policies/validate', BOB, 'POST', { yaml: 'policies:\n  - id: replay\n    severity: urgent\n' })).body).toMatchObject({ valid: false })
    expect((await call('/api/policies/reload', BOB, 'POST')).status).toBe(200)
    expect((await call('/api/delivery/requeue', ALICE, 'POST', { sink: 'webhook' })).body).toEqual({ requeued: 0 })
    // Refused by validation before anything ran: nothing to record.
    expect((await call(`/api/alerts/${acl}/comments`, ALICE, 'POST', { text: '' })).status).toBe(400)

    const { body } = await call('/api/audit-trail?order=oldest&limit=500', ALICE)
    const alice = fingerprint(ALICE)
    const bob = fingerprint(BOB)
    expect(body.items.map((e: any) => [e.actor, e.action, e.subject, e.detail.outcome, e.detail.status ?? null])).toEqual([
      [alice, 'alert.acknowledge', acl, 'requested', null], [alice, 'alert.acknowledge', acl, 'done', 200],
      [bob, 'alert.acknowledge', acl, 'requested', null], [bob, 'alert.acknowledge', acl, 'refused', 409],
      [bob, 'alert.comment', payload, 'requested', null], [bob, 'alert.comment', payload, 'done', 200],
      [alice, 'alert.resolve', acl, 'requested', null], [alice, 'alert.resolve', acl, 'done', 200],
      [bob, 'alert.resolve', '00000000-0000-0000-0000-000000000000', 'requested', null], [bob, 'alert.resolve', '00000000-0000-0000-0000-000000000000', 'refused', 404],
      [alice, 'quarantine.lift', 'flood-00001', 'requested', null], [alice, 'quarantine.lift', 'flood-00001', 'done', 202],
      [bob, 'policy.validate', null, 'requested', null], [bob, 'policy.validate', null, 'done', 200],
      [bob, 'policy.reload', null, 'requested', null], [bob, 'policy.reload', null, 'done', 200],
      [alice, 'delivery.requeue', 'webhook', 'requested', null], [alice, 'delivery.requeue', 'webhook', 'done', 200],
    ])
    const entries = body.items as any[]
    expect(body.total).toBe(18)
    expect(entries.every((e) => e.from === '127.0.0.1')).toBe(true)
    // Each outcome points at its request; what the action asked and answered is in the detail.
    entries.filter((_, i) => i % 2 === 1).forEach((outcome, i) => expect(outcome.detail.request).toBe(entries[2 * i].seq))
    expect(entries[0].detail).toEqual({ outcome: 'requested', comment: 'looking, INC-7' })
    expect(entries[3].detail).toMatchObject({ error: 'the alert is acknowledged' })
    expect(entries[4].detail).toEqual({ outcome: 'requested', text: 'firmware bug, vendor told' })
    expect(entries[12].detail).toMatchObject({ bytes: Buffer.byteLength('policies:\n  - id: replay\n    severity: urgent\n'), sha256: expect.stringMatching(/^[0-9a-f]{64}$/) })
    expect(entries[13].detail).toMatchObject({ valid: false, error: expect.stringMatching(/policies\.0\.severity/) })
    // The reload answers how many policies it loaded: the shipped set.
    expect(entries[15].detail).toMatchObject({ policies: api.detection.policySet.policies.length })
    expect(entries[17].detail).toMatchObject({ requeued: 0 })
    expect((await call('/api/audit-trail/verify', BOB)).body).toEqual({ intact: true, entries: 18 })
  })

  it('never keeps a token: not in an entry, not in the database file', async () => {
    await call('/api/policies/reload', ALICE, 'POST')
    const { body } = await call('/api/audit-trail?limit=500', ALICE)
    expect(body.total).toBeGreaterThan(0)
    const files = ['audit.db', 'audit.db-wal'].map((name) => `${api.dataDir}/${name}`).filter(existsSync)
    expect(files.length).toBeGreaterThan(0)
    for (const text of [JSON.stringify(body), ...files.map((file) => readFileSync(file).toString('latin1'))]) {
      for (const { token } of TOKENS) expect(text).not.toContain(token)
    }
    expect(JSON.stringify(body)).toContain(fingerprint(ALICE))
  })

  it('lets operators read it, newest first, a page at a time, and by subject; not viewers', async () => {
    expect((await call('/api/audit-trail', VIEWER))).toMatchObject({ status: 403, body: { code: 'PG_ERR_API_FORBIDDEN' } })
    expect((await call('/api/audit-trail/verify', VIEWER)).status).toBe(403)
    expect((await call('/api/audit-trail', null)).status).toBe(401)
    const seen: number[] = []
    let cursor: string | null = null
    do {
      const { body }: { body: any } = await call(`/api/audit-trail?limit=7${cursor ? `&cursor=${cursor}` : ''}`, BOB)
      seen.push(...body.items.map((e: any) => e.seq))
      cursor = body.next
    } while (cursor)
    expect(seen).toEqual(Array.from({ length: seen.length }, (_, i) => seen.length - i))
    const lifts = (await call('/api/audit-trail?subject=flood-00001', ALICE)).body
    expect(lifts.items.map((e: any) => e.action)).toEqual(['quarantine.lift', 'quarantine.lift'])
    expect((await call('/api/audit-trail?cursor=not-ours', ALICE))).toMatchObject({ status: 400, body: { code: 'PG_ERR_INPUT_INVALID' } })
  })

  it('is in the OpenAPI document', async () => {
    const { body } = await call('/docs/json', null)
    expect(Object.keys(body.paths)).toEqual(expect.arrayContaining(['/api/audit-trail', '/api/audit-trail/verify']))
    expect(body.paths['/api/audit-trail'].get.responses['200'].content['application/json'].schema.properties.items.items.properties).toHaveProperty('actor')
  })
})

describe('an action the trail cannot record', () => {
  it('is refused with 503 and not carried out', async () => {
    const { api, app, call } = await sourceAndApi()
    try {
      const alert = (await call('/api/alerts?policy=acl-violation', VIEWER)).body.items[0]
      api.auditTrail.close() // the trail's database is gone
      expect(await call(`/api/alerts/${alert.id}/ack`, ALICE, 'POST', {})).toMatchObject({ status: 503, body: { code: 'PG_ERR_AUDIT_UNAVAILABLE' } })
      expect(await call('/api/quarantine/flood-00001', ALICE, 'DELETE')).toMatchObject({ status: 503, body: { code: 'PG_ERR_AUDIT_UNAVAILABLE' } })
      expect((await call(`/api/alerts/${alert.id}`, VIEWER)).body).toMatchObject({ status: 'open', acknowledgedBy: null })
      expect(api.commands).toEqual([])
    } finally {
      await app.close()
      await api.close()
    }
  })
})
