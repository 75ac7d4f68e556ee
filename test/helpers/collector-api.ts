/**
 * A collector service on the file's broker and the HTTP API listening over
 * it on 127.0.0.1, for the whole test file; read `.service` and `.api`
 * inside the tests.
 */
import { afterAll, beforeAll } from 'vitest'
import { apiSourceFrom, type CollectorService, createCollectorService, loadConfig } from '../../app/index.ts'
import { type RunningApi, startApiServer } from '../../dashboards/index.ts'
import { createLogger } from '../../shared/logger.ts'
import type { RunningBroker } from './broker.ts'
import type { TestFleet } from './fleet.ts'

export function useCollectorApi (setup: { readonly fleet: TestFleet, readonly broker: RunningBroker }, apiTokens: string): { readonly service: CollectorService, readonly api: RunningApi } {
  let service: CollectorService | undefined
  let api: RunningApi | undefined
  beforeAll(async () => {
    const config = loadConfig({ env: { PLACEGUARD_API_TOKENS: apiTokens }, flags: { dataDir: setup.fleet.dataDir } })
    service = createCollectorService(config, setup.broker.url, createLogger({ level: 'silent' }))
    await service.start()
    api = await startApiServer(apiSourceFrom(service, config.apiTokens), { host: '127.0.0.1', port: 0, logger: createLogger({ level: 'silent' }) })
  }, 60_000)
  afterAll(async () => {
    await api?.close()
    await service?.stop()
  })
  return {
    get service () { return service! },
    get api () { return api! },
  }
}
