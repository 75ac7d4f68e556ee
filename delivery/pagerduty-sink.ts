/**
 * PagerDuty Events API v2 (developer.pagerduty.com, "Send an Alert
 * Event"): an opened alert triggers an incident, its acknowledgement and
 * resolution acknowledge and resolve it, all three under one `dedup_key`
 * per alert so PagerDuty folds them into the same incident, and a retried
 * trigger does not open a second one.
 *
 * The routing key is a credential: it goes only into the request body,
 * never into an error or a log line.
 */
import type { SinkConfigOf } from './config.ts'
import type { Alert, Severity } from '../shared/alert-contract.ts'
import { DEFAULT_TIMEOUT_MS, type HttpSinkOptions, postJson, sendEach, truncate } from './http-post.ts'
import { shownAlert } from './shown-alert.ts'
import type { DeliveredChange, Delivery, DeliveryResult, Sink } from './sink.ts'

/** PagerDuty's four severities; ours has five. */
const PAGERDUTY_SEVERITY: Record<Severity, 'critical' | 'error' | 'warning' | 'info'> = {
  critical: 'critical', high: 'error', medium: 'warning', low: 'info', info: 'info',
}
const EVENT_ACTION: Record<DeliveredChange, 'trigger' | 'acknowledge' | 'resolve'> = {
  opened: 'trigger', acknowledged: 'acknowledge', resolved: 'resolve',
}
/** Events API v2: payload.summary is at most 1,024 characters. */
const MAX_SUMMARY = 1_024

export function createPagerDutySink (config: SinkConfigOf<'pagerduty'>, options: HttpSinkOptions = {}): Sink {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS

  async function sendOne (delivery: Delivery): Promise<DeliveryResult> {
    const result = await postJson(config.url, JSON.stringify(pagerDutyEvent(config.routingKey, delivery)), {}, timeoutMs)
    // PagerDuty's error answers do not echo the key today; this keeps it so.
    return result.outcome === 'success' ? result : { ...result, error: result.error.replaceAll(config.routingKey, '[routing key]') }
  }

  return {
    type: 'pagerduty',
    name: config.name ?? config.type,
    maxBatch: 1,
    // Events API v2 accepts 120 events a minute per routing key, then answers 429.
    ratePerSec: 2,
    send: (deliveries) => sendEach(deliveries, sendOne),
    close: async () => {},
  }
}

/** The same key for every change of one alert: the incident PagerDuty acknowledges and resolves. */
export function dedupKey (alert: Alert): string {
  return `placeguard-${alert.id}`
}

export function pagerDutyEvent (routingKey: string, { change, alert: received }: Delivery): Record<string, unknown> {
  const alert = shownAlert(received)
  const event = { routing_key: routingKey, event_action: EVENT_ACTION[change], dedup_key: dedupKey(alert) }
  if (change !== 'opened') return event
  return {
    ...event,
    client: 'PlaceGuard',
    payload: {
      summary: truncate(`${alert.policy} on ${alert.deviceId}: ${alert.summary}`, MAX_SUMMARY),
      source: alert.deviceId,
      severity: PAGERDUTY_SEVERITY[alert.severity],
      timestamp: alert.detectedAt,
      component: alert.kind ?? undefined,
      group: alert.site ?? undefined,
      class: alert.policy,
      custom_details: { evidence: alert.evidence, stride: alert.stride, attack: alert.attack, alert },
    },
  }
}
