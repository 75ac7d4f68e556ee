/**
 * The collector process, assembled: the collector service and the HTTP
 * API and dashboard over it, for `placeguard collector`.
 */
import { type RunningApi, startApiServer } from '../dashboards/index.ts'
import type { Config } from './config.ts'
import type { Logger } from '../shared/logger.ts'
import { apiSourceFrom } from './api-source.ts'
import { createCollectorService, type CollectorService } from './collector-service.ts'

export interface CollectorProcess {
  service: CollectorService
  api: RunningApi
  stop: () => Promise<void>
}

export async function startCollectorProcess (config: Config, brokerUrl: string, logger: Logger): Promise<CollectorProcess> {
  const service = createCollectorService(config, brokerUrl, logger)
  await service.start()
  const api = await startApiServer(apiSourceFrom(service, config.apiTokens), { host: config.httpHost, port: config.httpPort, maxConnections: config.httpMaxConnections, maxConnectionsPerAddress: config.httpMaxConnectionsPerAddress, logger })
  logger.info({ url: api.url }, 'HTTP API and dashboard listening')
  return {
    service, api,
    stop: async () => {
      await api.close()
      await service.stop()
    },
  }
}
