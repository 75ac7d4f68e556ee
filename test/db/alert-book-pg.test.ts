/**
 * The alert book over PostgreSQL, as a collector group uses it: two books
 * on two pools (two collectors) raising the same findings at once keep one
 * live alert with one id, and an operator's acknowledge through one is what
 * the other reads. Then the collector service with `databaseUrl`: an
 * incident from a real device over the real broker becomes a row in
 * PostgreSQL's alerts table.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createCollectorService } from '../../app/collector-service.ts'
import { loadConfig } from '../../app/config.ts'
import { AlertBook, PgAlertStore } from '../../detection/index.ts'
import { createDatabasePool } from '../../db/index.ts'
import { createLogger } from '../../shared/logger.ts'
import { connectClient, useFleetWithBroker, waitFor } from '../helpers/broker.ts'
import { pgPlaces } from '../helpers/pg-place.ts'
import { startPostgres, type RunningPostgres } from '../helpers/postgres.ts'

const logger = createLogger({ level: 'silent' })
const finding = (deviceId: string) => ({ policy: 'acl-violation' as const, deviceId, severity: 'high' as const, summary: 'publish outside own topic', evidence: { topic: 'places/#', count: 1 } })

describe('two alert books on one PostgreSQL', () => {
  const pg = pgPlaces('alert_book')

  it('keep one live alert per (policy, device) across collectors, with the same id, and share an acknowledge', async () => {
    const a = new AlertBook({ asyncStore: new PgAlertStore({ pool: pg.pool('collector-a') }), logger })
    const b = new AlertBook({ asyncStore: new PgAlertStore({ pool: pg.pool('collector-b') }), logger })
    const raised = await Promise.all(Array.from({ length: 10 }, async (_, i) => await (i % 2 === 0 ? a : b).raise(finding('flood-001'), { site: 'riverside', kind: 'flood' })))
    expect(new Set(raised.map((change) => change.alert.id)).size).toBe(1)
    expect(raised.filter((change) => change.change === 'opened')).toHaveLength(1)
    const live = await b.list({ status: 'open' })
    expect(live).toHaveLength(1)
    expect(live[0]!.occurrences).toBe(10)
    await a.acknowledge(live[0]!.id, 'operator:ab12')
    expect(await b.get(live[0]!.id)).toMatchObject({ status: 'acknowledged', acknowledgedBy: 'operator:ab12' })
    await a.settled()
    await b.settled()
  })
})

describe('the collector service with databaseUrl', () => {
  const setup = useFleetWithBroker()
  let server: RunningPostgres
  beforeAll(async () => {
    server = await startPostgres()
    await setup.fleet.pki.issueMany([{ deviceId: 'flood-900', kind: 'flood', site: 'riverside' }])
  }, 60_000)
  afterAll(async () => { await server?.stop() })

  it('migrates at start and keeps the alerts it raises in PostgreSQL', async () => {
    const url = await server.createDatabase('service')
    const service = createCollectorService(loadConfig({ env: {}, flags: { dataDir: setup.fleet.dataDir, databaseUrl: url } }), setup.broker.url, logger)
    await service.start()
    try {
      const device = await connectClient(setup.broker.url, setup.fleet, setup.fleet.device('flood-900'), 'flood-900')
      // A publish outside its own topic: the broker closes it and reports acl-denied; detection raises acl-violation.
      device.publish('places/riverside/flood/flood-001/telemetry', '{}', { qos: 1 })
      const reader = createDatabasePool({ url, applicationName: 'test-reader', logger, max: 1 })
      try {
        let rows: Array<{ policy: string, device_id: string, status: string }> = []
        await waitFor(async () => {
          rows = (await reader.query('SELECT policy, device_id, status FROM alerts WHERE device_id = $1', ['flood-900'])).rows
          return rows.length > 0
        }, 15_000, 'the alert in PostgreSQL')
        expect(rows).toEqual([{ policy: 'acl-violation', device_id: 'flood-900', status: 'open' }])
        const versions = (await reader.query('SELECT version FROM schema_migrations')).rows
        expect(versions.length).toBeGreaterThan(0)
      } finally {
        await reader.end()
        device.end(true)
      }
    } finally {
      await service.stop()
    }
  }, 60_000)
})
