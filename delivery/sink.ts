/**
 * A SOC channel that alerts are delivered to. Sinks only format and send;
 * the outbox (outbox.ts) owns durability, retries, back-off, rate limits
 * and dead letters. A sink never throws for a delivery that failed: it
 * answers `success`, `retryable` (try again, perhaps after `retryAfterMs`)
 * or `failure` (the channel refused it for good, e.g. HTTP 400), as the
 * OpenTelemetry exporters do.
 */
import type { Alert } from '../shared/alert-contract.ts'
import type { AuditRecord } from '../shared/audit-record.ts'
export type { AuditRecord }

export const SINK_TYPES = ['webhook', 'slack', 'teams', 'pagerduty', 'syslog'] as const
export type SinkType = typeof SINK_TYPES[number]

/** The lifecycle changes that are delivered (a repeat folded into an alert is not news). */
export const DELIVERED_CHANGES = ['opened', 'acknowledged', 'resolved'] as const
export type DeliveredChange = typeof DELIVERED_CHANGES[number]

/** One alert change on its way to one sink. */
export interface Delivery {
  /** Stable across retries: the Standard Webhooks `webhook-id`, the syslog MSGID's companion, the dedup key of a retry. */
  id: string
  change: DeliveredChange
  alert: Alert
  /** When the change happened (ms epoch), for latency figures. */
  createdAtMs: number
  /** Delivery attempts so far, this one not included. */
  attempts: number
}

/** One audit entry on its way to one sink (only sinks that take the trail: syslog, docs/delivery.md). */
export interface AuditDelivery {
  /** Stable across retries and whoever queued it (auditDeliveryId). */
  id: string
  change: 'audit'
  audit: AuditRecord
  createdAtMs: number
  attempts: number
}

export type DeliveryResult =
  | { outcome: 'success' }
  | { outcome: 'retryable', error: string, retryAfterMs?: number }
  | { outcome: 'failure', error: string }

export interface Sink {
  readonly type: SinkType
  /** Unique among the configured sinks; in logs and metrics (never the URL: a Slack URL is a secret). */
  readonly name: string
  /**
   * Deliveries one `send` may carry. 1 for channels with one event per
   * request (webhook, PagerDuty, syslog); more for chat channels, which
   * coalesce a backlog into one message rather than drop or delay it.
   */
  readonly maxBatch: number
  /** Requests per second the channel accepts (Slack ≈ 1/s, PagerDuty ≈ 2/s); undefined = no limit. */
  readonly ratePerSec: number | undefined
  /** Sends the deliveries, all or nothing: the result applies to every one of them. */
  send: (deliveries: Delivery[]) => Promise<DeliveryResult>
  /** Sends audit trail entries, as `send` does alerts; absent for a sink that does not take the trail. */
  sendAudit?: (deliveries: AuditDelivery[]) => Promise<DeliveryResult>
  close: () => Promise<void>
}

/** Maps an HTTP answer to a result: 2xx success; 408, 429 and 5xx retryable (honouring Retry-After); other 4xx failure. */
export function resultOfHttpStatus (status: number, retryAfter: string | null, body: string): DeliveryResult {
  if (status >= 200 && status < 300) return { outcome: 'success' }
  const error = `HTTP ${status}${body ? `: ${body.slice(0, 200)}` : ''}`
  if (status === 408 || status === 429 || status >= 500) {
    const retryAfterMs = parseRetryAfter(retryAfter)
    return retryAfterMs === undefined ? { outcome: 'retryable', error } : { outcome: 'retryable', error, retryAfterMs }
  }
  return { outcome: 'failure', error }
}

/** RFC 9110 §10.2.3: delay-seconds or an HTTP-date. */
export function parseRetryAfter (value: string | null, nowMs = Date.now()): number | undefined {
  if (value === null || value.trim() === '') return undefined
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000
  const date = Date.parse(value)
  return Number.isNaN(date) ? undefined : Math.max(0, date - nowMs)
}
