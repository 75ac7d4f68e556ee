/**
 * What the HTTP API reads and acts on, handed in by whoever serves it (the
 * composition root, app/, builds one over a collector service). The API
 * keeps no state of its own besides its live-stream clients.
 */
import type { AuditEntry, AuditEvent, AuditPage, AuditQuery, AuditVerdict } from '../../audit/index.ts'
import type { AlertPage, AlertQuery } from '../../detection/index.ts'
import type { DeadLetter, SinkMetrics } from '../../delivery/index.ts'
import type { DeviceSummary, DeviceCertificate, DeviceRadio, FleetView, TelemetrySample } from '../../fleet/index.ts'
import type { LoadedPolicy, QuietWindow } from '../../policies/index.ts'
import type { Alert, AlertChange } from '../../shared/alert-contract.ts'
import type { MaybeAsync } from '../../shared/maybe-async.ts'
import type { ApiRole } from './config.ts'
import type { AdvisorySource, Exposure, Remediated } from './routes-advisories.ts'

export interface DeviceDetail extends DeviceSummary {
  certificate: DeviceCertificate | null
  /** LoRaWAN: the last uplink's gateways and signal; null for a certificate device, or one not heard since the collector started. */
  radio: DeviceRadio | null
  rate: { currentPerMinute: number, baselinePerMinute: number | null } | null
  quarantine: { until: string, reason: string, by: string } | null
  alerts: Alert[]
  telemetry: TelemetrySample[]
  /** The supplier's names for it (pki issue --vendor --model); null when not recorded. */
  vendor: string | null
  model: string | null
  /** Synced advisories its last reported firmware is affected by. */
  exposures: Exposure[]
  /** Advisories a firmware-vulnerable alert named, resolved since by a firmware out of their range. */
  remediated: Remediated[]
}

export interface ApiSource {
  fleet: FleetView
  /** The alert book: answers at once over SQLite, a Promise over PostgreSQL; the routes await. */
  alerts: {
    list: (query?: AlertQuery) => MaybeAsync<Alert[]>
    get: (id: string) => MaybeAsync<Alert | undefined>
    page: (query: AlertQuery, limit: number, cursor?: string) => MaybeAsync<AlertPage>
  }
  acknowledge: (id: string, by: string) => MaybeAsync<Alert | undefined>
  resolve: (id: string, by: string) => MaybeAsync<Alert | undefined>
  comment: (id: string, by: string, text: string) => MaybeAsync<Alert | undefined>
  rateOf: (deviceId: string) => { currentPerMinute: number, baselinePerMinute: number | null } | undefined
  policies: () => { policies: LoadedPolicy[], windows: QuietWindow[] }
  /** Validates policy YAML without applying it; the error names line and field. */
  validatePolicy: (yaml: string) => { valid: true } | { valid: false, error: string }
  reloadPolicies: () => boolean
  liftQuarantine: (deviceId: string, by: string) => Promise<void>
  /** The outbox: answered at once over SQLite, as Promises over the group's PostgreSQL. */
  delivery: { metrics: () => MaybeAsync<SinkMetrics[]>, deadLetters: () => MaybeAsync<DeadLetter[]>, requeue: (sink?: string) => MaybeAsync<number> }
  /** Figures for /metrics. */
  pipeline: () => Record<string, number | undefined>
  ready: () => { broker: boolean, store: boolean }
  /** Subscribes to alert changes (the live stream); returns the unsubscribe. */
  onAlertChange: (listener: (change: AlertChange) => void) => () => void
  tokens: ReadonlyArray<{ token: string, role: ApiRole }>
  /** Synced advisories and devices' vendor and model (docs/advisories.md); absent, /api/advisories lists none. */
  advisories?: AdvisorySource
  /** The operator audit trail (audit/): SQLite answers at once, PostgreSQL with a Promise; the routes await. */
  auditTrail: {
    append: (event: AuditEvent) => MaybeAsync<AuditEntry>
    page: (query: AuditQuery, limit: number, after?: number) => MaybeAsync<AuditPage>
    verify: () => MaybeAsync<AuditVerdict>
  }
}
