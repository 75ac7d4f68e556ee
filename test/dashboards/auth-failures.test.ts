/**
 * Issue 11: bearer-token brute force. Failed authentications are limited
 * per source address: the guessing address gets 429 with Retry-After,
 * whatever token it sends next; another address with a good token goes on
 * working. Through inject() with the source address set per request (the
 * address fastify reads is the socket's, as over real HTTP).
 */
import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildApi } from '../../dashboards/api/app.ts'
import { createLogger } from '../../shared/logger.ts'
import { apiSourceForTest, type TestApiSource } from '../helpers/api-source.ts'

const VIEWER = 'viewer-token-0123456789abcdef'
const clock = { ms: Date.parse('2026-11-23T12:00:00Z'), now: () => clock.ms }
let api: TestApiSource
let app: FastifyInstance

beforeAll(async () => {
  // An empty fleet: the API's answers do not matter here, only who gets one.
  api = apiSourceForTest({ tokens: [{ token: VIEWER, role: 'viewer' }] })
  app = await buildApi(api.source, { logger: createLogger({ level: 'silent' }), authFailuresPerMinute: 5, clock })
})
afterAll(async () => {
  await app?.close()
  await api?.close()
})

/** GET as if from a chosen source address (inject sets the request's remote address). */
async function get (from: string, token: string | null, path = '/api/fleet'): Promise<{ status: number, retryAfter: string | undefined, body: string }> {
  const response = await app.inject({ url: path, remoteAddress: from, headers: token ? { authorization: `Bearer ${token}` } : {} })
  return { status: response.statusCode, retryAfter: response.headers['retry-after'] as string | undefined, body: response.body }
}

describe('failed authentications per address', () => {
  it('answers 429 with Retry-After to an address that keeps guessing, good token or not, and only to it', async () => {
    const guesses: number[] = []
    for (let i = 0; i < 5; i++) guesses.push((await get('127.0.0.3', `guess-${i}-0123456789abcdef`)).status)
    guesses.push((await get('127.0.0.3', null)).status)
    expect(guesses).toEqual([401, 401, 401, 401, 401, 429])
    const blocked = await get('127.0.0.3', VIEWER)
    expect(blocked.status).toBe(429) // no oracle: a right guess looks like a wrong one
    expect(Number(blocked.retryAfter)).toBeGreaterThan(0)
    expect(JSON.parse(blocked.body)).toMatchObject({ code: 'PG_ERR_API_RATE_LIMITED' })

    expect((await get('127.0.0.4', VIEWER)).status).toBe(200)
    expect((await get('127.0.0.4', 'wrong-token-0123456789abcdef')).status).toBe(401)
    expect((await get('127.0.0.3', null, '/healthz')).status).toBe(200) // open routes stay open

    clock.ms += 61_000
    expect((await get('127.0.0.3', VIEWER)).status).toBe(200)
  })
})
