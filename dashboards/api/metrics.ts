/**
 * GET /metrics: Prometheus text format (prom-client), `placeguard_`
 * prefix, base units, and no per-device labels (a 10k-device fleet would
 * be 10k series per metric); sinks are labelled, being few. Viewer token
 * required (Prometheus sends it with `authorization: { credentials: … }`).
 */
import type { FastifyInstance } from 'fastify'
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client'
import type { SinkMetrics } from '../../delivery/index.ts'
import { DEVICE_HEALTH } from '../../fleet/index.ts'
import { SEVERITIES } from '../../shared/alert-contract.ts'
import type { ApiSource } from './source.ts'

/** A counter that follows a running total kept elsewhere (prom-client counters only go up by inc()). */
function followingCounter (registry: Registry, name: string, help: string, read: () => number | undefined): void {
  let seen = 0
  new Counter({ name, help, registers: [registry], collect () {
    const value = read() ?? 0
    if (value > seen) this.inc(value - seen)
    seen = Math.max(seen, value)
  } })
}

export function registerMetrics (app: FastifyInstance, source: ApiSource): void {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry, prefix: 'placeguard_' })
  // One snapshot of the pipeline and the fleet per scrape, read by every metric below.
  let figures: Record<string, number | undefined> = {}
  let fleet = source.fleet.summary()
  const pipeline = (key: string) => () => figures[key]
  followingCounter(registry, 'placeguard_messages_received_total', 'MQTT messages the collector received', pipeline('received'))
  followingCounter(registry, 'placeguard_telemetry_stored_total', 'telemetry points committed to the spool', pipeline('telemetryStored'))
  followingCounter(registry, 'placeguard_security_events_stored_total', 'security events committed to the spool', pipeline('eventsStored'))
  followingCounter(registry, 'placeguard_payloads_rejected_total', 'telemetry payloads that failed validation', pipeline('rejected'))
  followingCounter(registry, 'placeguard_lorawan_events_total', 'LoRaWAN network server events heard through integrations (registered or not)', pipeline('lorawanEvents'))
  followingCounter(registry, 'placeguard_store_points_written_total', 'points the time-series store confirmed', pipeline('written'))
  followingCounter(registry, 'placeguard_store_write_errors_total', 'failed writes to the time-series store (retried)', pipeline('writeErrors'))
  followingCounter(registry, 'placeguard_store_points_rejected_total', 'points the store refused for good, kept in the spool\'s rejected table', pipeline('storeRejected'))
  followingCounter(registry, 'placeguard_log_dropped_total', 'log lines dropped because stdout could not keep up (logging never stalls the pipeline)', pipeline('logDropped'))
  followingCounter(registry, 'placeguard_pipeline_stalls_total', 'times the collector\'s own event loop stalled (a pause, a freeze, a blocked write)', pipeline('pipelineStalls'))
  new Gauge({ name: 'placeguard_pipeline_behind', help: '1 while the collector is behind its input (stalled, disconnected or reading a backlog): silence is not judged', registers: [registry], collect () { this.set(figures.pipelineBehind ?? 0) } })
  new Gauge({ name: 'placeguard_spool_points', help: 'points waiting in the spool for the store', registers: [registry], collect () { this.set(figures.spooledPoints ?? 0) } })
  new Gauge({ name: 'placeguard_spool_bytes', help: 'disk used by the spool', registers: [registry], collect () { this.set(figures.spoolBytes ?? 0) } })
  new Gauge({ name: 'placeguard_spool_max_bytes', help: 'the spool\'s bound', registers: [registry], collect () { this.set(figures.spoolMaxBytes ?? 0) } })
  new Gauge({ name: 'placeguard_store_write_latency_seconds', help: 'latency of the last confirmed write to the store', registers: [registry], collect () { this.set((figures.lastWriteLatencyMs ?? 0) / 1000) } })
  new Gauge({
    name: 'placeguard_devices', help: 'devices by health', labelNames: ['health'], registers: [registry],
    collect () {
      for (const health of DEVICE_HEALTH) this.set({ health }, fleet.byHealth[health])
    },
  })
  new Gauge({ name: 'placeguard_devices_connected', help: 'devices with a live MQTT session', registers: [registry], collect () { this.set(fleet.connected) } })
  new Gauge({
    name: 'placeguard_alerts_open', help: 'open and acknowledged alerts by severity', labelNames: ['severity'], registers: [registry],
    collect () {
      for (const severity of SEVERITIES) this.set({ severity }, fleet.openAlerts[severity])
    },
  })
  // Read before each scrape (the outbox may answer asynchronously); the gauges below read this copy.
  let sinkFigures: SinkMetrics[] = []
  const sinks = (): SinkMetrics[] => sinkFigures
  const deliveries = new Counter({ name: 'placeguard_alert_deliveries_total', help: 'alert deliveries by sink and outcome', labelNames: ['sink', 'outcome'], registers: [registry] })
  const seenDeliveries = new Map<string, number>()
  new Gauge({
    name: 'placeguard_alert_deliveries_pending', help: 'alert deliveries waiting in the outbox', labelNames: ['sink'], registers: [registry],
    collect () {
      for (const sink of sinks()) {
        this.set({ sink: sink.sink }, sink.pending)
        for (const [outcome, total] of [['delivered', sink.delivered], ['retried', sink.retries], ['failed', sink.failures]] as const) {
          const key = `${sink.sink}/${outcome}`
          const delta = total - (seenDeliveries.get(key) ?? 0)
          if (delta > 0) deliveries.inc({ sink: sink.sink, outcome }, delta)
          seenDeliveries.set(key, total)
        }
      }
    },
  })
  new Gauge({ name: 'placeguard_alert_deliveries_dead', help: 'alert deliveries on the dead-letter list', labelNames: ['sink'], registers: [registry], collect () { for (const sink of sinks()) this.set({ sink: sink.sink }, sink.deadLettered) } })
  new Gauge({
    name: 'placeguard_alert_delivery_latency_seconds', help: 'alert change to the sink\'s confirmation, over the last 1,000 deliveries', labelNames: ['sink', 'quantile'], registers: [registry],
    collect () {
      for (const sink of sinks()) {
        if (sink.latencyP50Ms !== undefined) this.set({ sink: sink.sink, quantile: '0.5' }, sink.latencyP50Ms / 1000)
        if (sink.latencyP99Ms !== undefined) this.set({ sink: sink.sink, quantile: '0.99' }, sink.latencyP99Ms / 1000)
      }
    },
  })

  app.get('/metrics', { config: { role: 'viewer' }, schema: { summary: 'Prometheus metrics', produces: ['text/plain'] } }, async (_request, reply) => {
    figures = source.pipeline()
    fleet = source.fleet.summary()
    sinkFigures = await source.delivery.metrics()
    return reply.type(registry.contentType).send(await registry.metrics())
  })
}
