/**
 * A broker node's own HTTP face, for operations: `GET /healthz` (no token:
 * load balancers and orchestrators probe it) says whether the node is in
 * the cluster — Redis reachable and its heartbeat younger than the expiry
 * — and `GET /metrics` (any API token) gives its figures in Prometheus'
 * text format, `placeguard_node_` prefix, no per-device labels.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client'
import { authenticate, type HttpConnectionLimits, limitConnections } from '../dashboards/index.ts'
import type { Logger } from '../shared/logger.ts'

export interface NodeFigures {
  sessions: Record<string, number>
  quarantined: number
  handedOff: number
  handoffFailures: number
  eventsPending: number
  redisUp: boolean
  heartbeatAgeMs: number | undefined
  heartbeatTtlMs: number
}

export interface NodeHealthOptions {
  nodeId: string
  host: string
  port: number
  tokens: ReadonlyArray<{ token: string, role: 'viewer' | 'operator' }>
  figures: () => NodeFigures
  logger: Logger
  /** As the API's (httpMaxConnections, httpMaxConnectionsPerAddress): each connection is a descriptor the broker needs too. */
  connections: HttpConnectionLimits
}

export interface RunningNodeHealth {
  url: string
  close: () => Promise<void>
}

/** Healthy: Redis answers and the last heartbeat is younger than half the expiry (one missed beat is allowed, two are not). */
export function nodeHealthy (figures: NodeFigures): boolean {
  return figures.redisUp && figures.heartbeatAgeMs !== undefined && figures.heartbeatAgeMs < figures.heartbeatTtlMs / 2
}

export async function startNodeHealth (options: NodeHealthOptions): Promise<RunningNodeHealth> {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry, prefix: 'placeguard_node_' })
  let figures = options.figures()
  const following = (name: string, help: string, read: () => number): void => {
    let seen = 0
    new Counter({ name, help, registers: [registry], collect () {
      const value = read()
      if (value > seen) this.inc(value - seen)
      seen = Math.max(seen, value)
    } })
  }
  new Gauge({ name: 'placeguard_node_sessions', help: 'verified sessions on this node, by role', labelNames: ['role'], registers: [registry], collect () {
    this.reset()
    for (const [role, count] of Object.entries(figures.sessions)) this.set({ role }, count)
  } })
  new Gauge({ name: 'placeguard_node_quarantined_devices', help: 'quarantines in force on this node', registers: [registry], collect () { this.set(figures.quarantined) } })
  following('placeguard_node_handoff_total', 'telemetry messages and security events this node appended to the cluster streams', () => figures.handedOff)
  following('placeguard_node_handoff_failures_total', 'telemetry messages Redis did not take (the device was disconnected unacknowledged)', () => figures.handoffFailures)
  new Gauge({ name: 'placeguard_node_events_pending', help: 'security events waiting for Redis (bounded; each is in the log too)', registers: [registry], collect () { this.set(figures.eventsPending) } })
  new Gauge({ name: 'placeguard_node_redis_up', help: '1 while the node\'s Redis connection is ready', registers: [registry], collect () { this.set(figures.redisUp ? 1 : 0) } })
  new Gauge({ name: 'placeguard_node_heartbeat_age_seconds', help: 'time since Redis last took this node\'s heartbeat (-1 before the first)', registers: [registry], collect () {
    this.set(figures.heartbeatAgeMs === undefined ? -1 : figures.heartbeatAgeMs / 1_000)
  } })
  new Gauge({ name: 'placeguard_node_up', help: '1 while the node is healthy (Redis up, heartbeat fresh)', registers: [registry], collect () { this.set(nodeHealthy(figures) ? 1 : 0) } })

  const server: Server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0]
    if (request.method !== 'GET') return void response.writeHead(405, { allow: 'GET' }).end()
    if (path === '/healthz') {
      figures = options.figures()
      const healthy = nodeHealthy(figures)
      response.writeHead(healthy ? 200 : 503, { 'content-type': 'application/json' })
      return void response.end(JSON.stringify({ status: healthy ? 'ok' : 'unavailable', node: options.nodeId, redis: figures.redisUp ? 'up' : 'down', heartbeatAgeMs: figures.heartbeatAgeMs ?? null }))
    }
    if (path === '/metrics') {
      if (!authenticate(request.headers.authorization, options.tokens)) {
        return void response.writeHead(401, { 'www-authenticate': 'Bearer', 'content-type': 'application/json' }).end(JSON.stringify({ code: 'PG_ERR_API_UNAUTHORIZED', message: 'a bearer token is required' }))
      }
      figures = options.figures()
      registry.metrics().then((text) => response.writeHead(200, { 'content-type': registry.contentType }).end(text), (error: Error) => {
        options.logger.error({ err: error.message }, 'node metrics failed')
        response.writeHead(500).end()
      })
      return
    }
    response.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ code: 'PG_ERR_API_NOT_FOUND', message: `no ${path}` }))
  })
  limitConnections(server, options.connections, options.logger)
  // A slow or idle client must not hold sockets for long (shorter than the API's: nothing here takes a body).
  server.requestTimeout = 10_000
  server.headersTimeout = 5_000
  // An idle kept-alive socket stays open longer than clients keep theirs (undici: a few seconds), so the
  // client is the one to close it: a server closing first races a client reusing it ("other side closed").
  server.keepAliveTimeout = 65_000
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port, options.host, () => resolve())
  })
  const { port, address } = server.address() as AddressInfo
  const url = `http://${address.includes(':') ? `[${address}]` : address}:${port}`
  return { url, close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }) }
}
