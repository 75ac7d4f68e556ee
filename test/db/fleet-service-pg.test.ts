/**
 * The collector service with `databaseUrl` keeps its fleet state in the
 * group's PostgreSQL: what real devices sent over the real broker is in
 * the devices table after a flush, and GET /api/devices lists as well the
 * devices another collector saved — those saved before the start (loaded)
 * and after it (the periodic refresh).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runSimulation } from '../../agent-sim/index.ts'
import { apiSourceFrom, createCollectorService, loadConfig } from '../../app/index.ts'
import { startApiServer } from '../../dashboards/index.ts'
import { createDatabasePool, migrate } from '../../db/index.ts'
import { PgFleetStore } from '../../fleet/index.ts'
import { createLogger } from '../../shared/logger.ts'
import { useFleetWithBroker, waitFor } from '../helpers/broker.ts'
import { startPostgres, type RunningPostgres } from '../helpers/postgres.ts'

const logger = createLogger({ level: 'silent' })
const VIEWER = 'viewer-token-0123456789abcdef'
const setup = useFleetWithBroker()
let server: RunningPostgres

beforeAll(async () => { server = await startPostgres() }, 60_000)
afterAll(async () => { await server?.stop() })

describe('the collector service with databaseUrl', () => {
  it('saves its devices in PostgreSQL and its API lists the devices other collectors saved', async () => {
    const url = await server.createDatabase('fleet_service')
    const other = createDatabasePool({ url, applicationName: 'test-other-collector', logger, max: 2 })
    const elsewhere = new PgFleetStore({ pool: other })
    const config = loadConfig({ env: { PLACEGUARD_API_TOKENS: `${VIEWER}:viewer` }, flags: { dataDir: setup.fleet.dataDir, databaseUrl: url } })
    const service = createCollectorService(config, setup.broker.url, logger)
    try {
      await migrate(other, { logger })
      const seenMs = Date.now() - 60_000
      await elsewhere.save([{ id: 'flood-elsewhere', kind: 'flood', site: 'north', firmware: '3.0.0', lastSeenMs: seenMs, newMessages: 40 }])
      await service.start()
      const api = await startApiServer(apiSourceFrom(service, config.apiTokens), { host: '127.0.0.1', port: 0, logger })
      try {
        const devices = async (): Promise<Array<{ id: string, firmware: string | null, messages: number, lastSeenAt: string | null }>> => {
          const response = await fetch(new URL('/api/devices?limit=500', api.url), { headers: { authorization: `Bearer ${VIEWER}` } })
          expect(response.status).toBe(200)
          return ((await response.json()) as { items: Array<{ id: string, firmware: string | null, messages: number, lastSeenAt: string | null }> }).items
        }
        expect((await devices()).find((d) => d.id === 'flood-elsewhere')).toMatchObject({ firmware: '3.0.0', messages: 40, lastSeenAt: new Date(seenMs).toISOString() })

        const summary = await runSimulation({ dataDir: setup.fleet.dataDir, brokerUrl: setup.broker.url, devices: 3, intervalMs: 250, durationMs: 1_500, seed: 4 })
        expect(summary.failed).toBe(0)
        // Flushed by the service's timer: every acknowledged message counted once, in the group's table.
        await waitFor(async () => {
          const stored = (await elsewhere.load()).devices.filter((d) => d.id !== 'flood-elsewhere')
          return stored.length === 3 && stored.reduce((sum, d) => sum + d.messages, 0) === summary.acked
        }, 20_000, `${summary.acked} messages of 3 devices in PostgreSQL`)

        // Another collector's device heard after the start reaches this collector's API at a refresh.
        await elsewhere.save([{ id: 'energy-elsewhere', kind: 'energy', site: 'north', firmware: '5.3.0', lastSeenMs: Date.now(), newMessages: 7 }])
        await waitFor(async () => (await devices()).some((d) => d.id === 'energy-elsewhere' && d.messages === 7), 20_000, 'the other collector\'s new device in the API')
        expect((await devices()).map((d) => d.id).filter((id) => id.includes('elsewhere')).sort()).toEqual(['energy-elsewhere', 'flood-elsewhere'])
      } finally {
        await api.close()
      }
    } finally {
      await service.stop()
      await other.end()
    }
  }, 90_000)
})
