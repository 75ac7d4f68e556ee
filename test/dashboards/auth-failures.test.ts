/**
 * Issue 11: bearer-token brute force. Failed authentications are limited
 * per source address over real HTTP: the guessing address gets 429 with
 * Retry-After, whatever token it sends next; another address with a good
 * token goes on working.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type CollectorService, createCollectorService } from '../../app/collector-service.ts'
import { apiSourceFrom } from '../../app/index.ts'
import { type RunningApi, startApiServer } from '../../dashboards/index.ts'
import { loadConfig } from '../../app/config.ts'
import { createLogger } from '../../shared/logger.ts'

const VIEWER = 'viewer-token-0123456789abcdef'
const clock = { ms: Date.parse('2026-11-23T12:00:00Z'), now: () => clock.ms }
let dir: string
let service: CollectorService
let api: RunningApi

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'placeguard-auth-failures-'))
  const config = loadConfig({ env: { PLACEGUARD_API_TOKENS: `${VIEWER}:viewer` }, flags: { dataDir: dir } })
  // The collector is not started: the API reads its (empty) state, which is all this needs.
  service = createCollectorService(config, 'mqtts://127.0.0.1:1', createLogger({ level: 'silent' }))
  api = await startApiServer(apiSourceFrom(service, config.apiTokens), { host: '127.0.0.1', port: 0, logger: createLogger({ level: 'silent' }), authFailuresPerMinute: 5, clock })
})
afterAll(async () => {
  await api?.close()
  rmSync(dir, { recursive: true, force: true })
})

/** GET from a chosen loopback address (the kernel routes all of 127/8 to lo). */
function get (from: string, token: string | null, path = '/api/fleet'): Promise<{ status: number, retryAfter: string | undefined, body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: api.port, path, localAddress: from, headers: token ? { authorization: `Bearer ${token}` } : {} }, (response) => {
      let body = ''
      response.on('data', (chunk: Buffer) => { body += chunk })
      response.on('end', () => resolve({ status: response.statusCode!, retryAfter: response.headers['retry-after'] as string | undefined, body }))
    })
    req.on('error', reject)
    req.end()
  })
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
