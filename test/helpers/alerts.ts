/** Alerts and deliveries as the outbox hands them to a sink, without the alert book. */
import { randomUUID } from 'node:crypto'
import type { DeliveredChange, Delivery } from '../../delivery/index.ts'
import type { Alert } from '../../shared/alert-contract.ts'

/** The alert JSON fields every sink carries (docs/product.md). */
export const PRODUCT_FIELDS = ['id', 'policy', 'severity', 'deviceId', 'site', 'kind', 'summary', 'detectedAt', 'status', 'evidence'] as const

export function alertOf (overrides: Partial<Alert> = {}): Alert {
  const detectedAt = new Date().toISOString()
  return {
    id: randomUUID(), policy: 'identity-clone', severity: 'critical', deviceId: 'flood-007', site: 'riverside', kind: 'flood',
    summary: 'flood-007 is connected from 10.0.0.5 and 10.0.9.9 at once', detectedAt, status: 'open',
    evidence: { firstAddress: '10.0.0.5', secondAddress: '10.0.9.9', sessions: 2 },
    stride: 'Spoofing', attack: 'T0849 Masquerading', lastSeenAt: detectedAt, occurrences: 1,
    acknowledgedBy: null, resolvedAt: null, resolution: null, response: null, comments: [],
    ...overrides,
  }
}

/** A delivery of `alert` for `change`, its status set to match; `fields` fixes the delivery's id or createdAtMs where a test needs them. */
export function deliveryOf (alert: Alert, change: DeliveredChange = 'opened', fields: Partial<Pick<Delivery, 'id' | 'createdAtMs'>> = {}): Delivery {
  const status = change === 'opened' ? 'open' : change
  return { id: randomUUID(), change, alert: { ...alert, status }, createdAtMs: Date.now(), attempts: 0, ...fields }
}
