/**
 * The dashboards room: the HTTP API and web dashboard (fastify) over a
 * collector service, and the Grafana dashboards (files, not code).
 */
export { buildApi, type ApiOptions } from './api/app.ts'
export { startApiServer, type RunningApi } from './api/server.ts'
export type { ApiSource, DeviceDetail } from './api/source.ts'
export { apiTokensSchema } from './api/config.ts'
export { authenticate } from './api/auth.ts'
export { limitConnections, type HttpConnectionLimits } from './api/connection-limits.ts'
