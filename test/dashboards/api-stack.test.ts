/* eslint-disable @typescript-eslint/no-explicit-any -- response bodies are JSON whose shape the assertions check */
/**
 * The wiring, end to end: a broker, a collector service, a simulated
 * fleet and the API listening on real HTTP. The routes themselves are
 * tested through inject() over a source in memory (api.test.ts); this
 * proves that a running collector hands the API what it sees, and that
 * the API's commands reach the broker.
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { loadScenario, runSimulation } from '../../agent-sim/index.ts'
import { useCollectorApi } from '../helpers/collector-api.ts'
import { useFleetWithBroker, waitFor } from '../helpers/broker.ts'

const OPERATOR = 'operator-token-0123456789abcdef'
const VIEWER = 'viewer-token-0123456789abcdef'
const setup = useFleetWithBroker()
const running = useCollectorApi(setup, `${OPERATOR}:operator,${VIEWER}:viewer`)


async function call (path: string, options: { token?: string | null, method?: string } = {}): Promise<{ status: number, body: any, headers: Headers, text: string }> {
  const token = options.token === undefined ? VIEWER : options.token
  const response = await fetch(new URL(path, running.api.url), { method: options.method ?? 'GET', headers: token ? { authorization: `Bearer ${token}` } : {} })
  const text = await response.text()
  let body: unknown
  try { body = JSON.parse(text) } catch { body = undefined }
  return { status: response.status, body, headers: response.headers, text }
}

describe('the API over a running collector (broker, simulator, real HTTP)', () => {
  it('shows a token holder the alert a simulated incident raised and the collector\'s own figures, refuses a caller without a token, streams, and lifts a quarantine at the broker', async () => {
    const scenario = join(setup.fleet.dataDir, 'api.yaml')
    writeFileSync(scenario, 'name: api\nincidents:\n  - { policy: acl-violation, mode: wildcard-subscribe, select: { ids: [flood-00000] }, at: 300ms }\n')
    await runSimulation({ dataDir: setup.fleet.dataDir, brokerUrl: setup.broker.url, devices: 3, intervalMs: 200, durationMs: 1_000, seed: 3, mix: { flood: 1, energy: 1, housing: 1 }, scenario: loadScenario(scenario) })
    running.service.refreshInventory()
    await waitFor(async () => (await running.service.detection.alerts.list({ policy: 'acl-violation' })).length === 1, 10_000, 'the incident\'s alert')

    const alerts = await call('/api/alerts?policy=acl-violation')
    expect(alerts.status).toBe(200)
    expect(alerts.body.items).toEqual([expect.objectContaining({ deviceId: 'flood-00000', severity: 'high', status: 'open', evidence: expect.objectContaining({ topic: 'places/#' }) })])
    const refused = await call('/api/alerts?policy=acl-violation', { token: null })
    expect(refused.status).toBe(401)
    expect(refused.headers.get('www-authenticate')).toMatch(/^Bearer/)
    expect(refused.text).not.toContain('flood-00000')

    // What the collector itself hands the API: its session, its fleet view, the engine's rates, its pipeline figures.
    expect(await call('/readyz', { token: null })).toMatchObject({ status: 200, body: { ready: true, checks: { broker: true, store: true } } })
    expect((await call('/api/fleet')).body).toMatchObject({ devices: 3, neverSeen: 0 })
    expect((await call('/api/devices/flood-00000')).body.rate.baselinePerMinute).toBeGreaterThan(0)
    expect((await call('/metrics')).text).toMatch(/^placeguard_messages_received_total [1-9]\d*$/m)

    // The live stream over a real socket.
    const controller = new AbortController()
    const timer = setTimeout(() => controller.abort(), 10_000)
    try {
      const stream = await fetch(new URL('/api/stream', running.api.url), { headers: { authorization: `Bearer ${VIEWER}` }, signal: controller.signal })
      expect(stream.headers.get('content-type')).toMatch(/^text\/event-stream/)
      const reader = stream.body!.getReader()
      let text = ''
      while (!/event: fleet\ndata: \{"devices":3,/.test(text)) text += new TextDecoder().decode((await reader.read()).value)
    } finally {
      clearTimeout(timer)
      controller.abort()
    }

    // A lift through the API reaches the broker, and the broker's event comes back into the fleet view.
    await running.service.detection.quarantine('energy-00000', 3_600_000, 'test', 'alice')
    await waitFor(() => running.service.fleet.quarantineOf('energy-00000') !== null, 5_000, 'the quarantine seen by the fleet state')
    expect(await call('/api/quarantine/energy-00000', { method: 'DELETE', token: OPERATOR })).toMatchObject({ status: 202, body: { lifted: 'energy-00000' } })
    expect(await setup.broker.waitForEvent((e) => e.type === 'quarantine-lifted' && e.deviceId === 'energy-00000')).toMatchObject({ details: { by: expect.stringMatching(/^operator:[0-9a-f]{8}$/) } })
    await waitFor(() => running.service.fleet.quarantineOf('energy-00000') === null, 5_000, 'lifted in the fleet state')
  }, 60_000)
})
