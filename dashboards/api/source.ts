/**
 * What the HTTP API reads and acts on, handed in by whoever serves it (the
 * collector service in `collector` and `up`). The API keeps no state of
 * its own besides its live-stream clients.
 */
import type { CollectorService, DeviceSummary, DeviceCertificate, FleetState, TelemetrySample } from '../../collector/index.ts'
import type { DeadLetter, SinkMetrics } from '../../delivery/index.ts'
import { type Alert, type AlertBook, type AlertChange, type LoadedPolicy, type QuietWindow, validatePolicyText } from '../../policies/index.ts'
import type { ApiRole } from '../../shared/config.ts'

export interface DeviceDetail extends DeviceSummary {
  certificate: DeviceCertificate | null
  rate: { currentPerMinute: number, baselinePerMinute: number | null } | null
  quarantine: { until: string, reason: string, by: string } | null
  alerts: Alert[]
  telemetry: TelemetrySample[]
}

export interface ApiSource {
  fleet: FleetState
  alerts: Pick<AlertBook, 'list' | 'get' | 'page'>
  acknowledge: (id: string, by: string) => Alert | undefined
  resolve: (id: string, by: string) => Alert | undefined
  comment: (id: string, by: string, text: string) => Alert | undefined
  rateOf: (deviceId: string) => { currentPerMinute: number, baselinePerMinute: number | null } | undefined
  policies: () => { policies: LoadedPolicy[], windows: QuietWindow[] }
  /** Validates policy YAML without applying it; the error names line and field. */
  validatePolicy: (yaml: string) => { valid: true } | { valid: false, error: string }
  reloadPolicies: () => boolean
  liftQuarantine: (deviceId: string, by: string) => Promise<void>
  delivery: { metrics: () => SinkMetrics[], deadLetters: () => DeadLetter[], requeue: (sink?: string) => number }
  /** Figures for /metrics. */
  pipeline: () => Record<string, number | undefined>
  ready: () => { broker: boolean, store: boolean }
  /** Subscribes to alert changes (the live stream); returns the unsubscribe. */
  onAlertChange: (listener: (change: AlertChange) => void) => () => void
  tokens: ReadonlyArray<{ token: string, role: ApiRole }>
}

/**
 * What a collector service offers the API, in the API's own terms: the
 * dashboard depends on the collector, never the other way round.
 */
export function apiSourceFrom (service: CollectorService, tokens: ApiSource['tokens']): ApiSource {
  const { detection, outbox, fleet } = service
  return {
    fleet,
    alerts: detection.alerts,
    acknowledge: (id, by) => detection.acknowledge(id, by),
    resolve: (id, by) => detection.resolve(id, by),
    comment: (id, by, text) => detection.comment(id, by, text),
    rateOf: (deviceId) => detection.engine.rateOf(deviceId),
    policies: () => detection.policySet,
    validatePolicy: (yaml) => {
      try {
        validatePolicyText(yaml)
        return { valid: true }
      } catch (error) {
        return { valid: false, error: (error as Error).message }
      }
    },
    reloadPolicies: () => detection.reloadPolicies(),
    liftQuarantine: (deviceId, by) => detection.liftQuarantine(deviceId, by),
    delivery: { metrics: () => outbox.metrics(), deadLetters: () => outbox.deadLetters(), requeue: (sink) => outbox.requeueDeadLetters(sink) },
    pipeline: () => ({ ...service.metrics() }),
    ready: () => ({ broker: service.collector.connected, store: !service.spool.nearFull }),
    onAlertChange: service.onAlertChange,
    tokens,
  }
}
