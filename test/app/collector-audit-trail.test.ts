/**
 * Where a collector service keeps its operators' audit trail
 * (app/collector-service.ts): `<data-dir>/audit.db` on its own, the
 * group's PostgreSQL with `databaseUrl`, so every collector's API records
 * into one chain. An operator action over real HTTP lands in the one the
 * configuration names.
 */
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { apiSourceFrom, createCollectorService, loadConfig } from '../../app/index.ts'
import { SqliteAuditStore } from '../../audit/index.ts'
import { createDatabasePool } from '../../db/index.ts'
import { startApiServer } from '../../dashboards/index.ts'
import { createLogger } from '../../shared/logger.ts'
import { useFleetWithBroker } from '../helpers/broker.ts'
import { startPostgres, type RunningPostgres } from '../helpers/postgres.ts'

const logger = createLogger({ level: 'silent' })
const OPERATOR = 'operator-token-for-the-trail-0123'
const ACTOR = `operator:${createHash('sha256').update(OPERATOR).digest('hex').slice(0, 8)}`
const setup = useFleetWithBroker()
let server: RunningPostgres
beforeAll(async () => { server = await startPostgres() }, 60_000)
afterAll(async () => { await server?.stop() })

/** Starts a collector and its API with `flags`, reloads the policies as an operator over HTTP, and stops them. */
async function reloadAsOperator (flags: Record<string, string>): Promise<void> {
  const config = loadConfig({ env: { PLACEGUARD_API_TOKENS: `${OPERATOR}:operator` }, flags: { dataDir: setup.fleet.dataDir, ...flags } })
  const service = createCollectorService(config, setup.broker.url, logger)
  await service.start()
  const api = await startApiServer(apiSourceFrom(service, config.apiTokens), { host: '127.0.0.1', port: 0, logger })
  try {
    const response = await fetch(new URL('api/policies/reload', api.url), { method: 'POST', headers: { authorization: `Bearer ${OPERATOR}` } })
    expect(response.status).toBe(200)
  } finally {
    await api.close()
    await service.stop()
  }
}

describe('the collector service\'s audit trail', () => {
  it('is <data-dir>/audit.db without a database URL', async () => {
    await reloadAsOperator({})
    const trail = new SqliteAuditStore({ path: join(setup.fleet.dataDir, 'audit.db') })
    try {
      expect(trail.page({ order: 'oldest' }, 10).items.map((e) => [e.actor, e.action, e.detail.outcome])).toEqual([[ACTOR, 'policy.reload', 'requested'], [ACTOR, 'policy.reload', 'done']])
      expect(trail.verify()).toEqual({ intact: true, entries: 2 })
    } finally {
      trail.close()
    }
  }, 60_000)

  it('is the group\'s PostgreSQL with one', async () => {
    const url = await server.createDatabase('trail')
    await reloadAsOperator({ databaseUrl: url })
    const reader = createDatabasePool({ url, applicationName: 'test-reader', logger, max: 1 })
    try {
      const { rows } = await reader.query('SELECT actor, action, detail ->> \'outcome\' AS outcome FROM audit_events ORDER BY seq')
      expect(rows).toEqual([{ actor: ACTOR, action: 'policy.reload', outcome: 'requested' }, { actor: ACTOR, action: 'policy.reload', outcome: 'done' }])
      expect((await reader.query('SELECT audit_verify() AS broken')).rows).toEqual([{ broken: null }])
    } finally {
      await reader.end()
    }
  }, 60_000)
})
