/**
 * The words of the alert contract (docs/product.md): the policy ids that alerts,
 * policy files and sink routing name, and the severities. Every room speaks
 * them — the policies define what each id means, delivery routes by them,
 * configuration validates them — so they live here, where any room may
 * import them without importing another room.
 */
export const POLICY_IDS = [
  'cert-expiry', 'cert-rejected', 'cert-revoked-attempt', 'firmware-outdated', 'firmware-vulnerable',
  'firmware-downgrade', 'rate-burst', 'device-silent', 'acl-violation', 'identity-clone',
  'connection-flapping', 'value-implausible', 'payload-invalid', 'clock-skew', 'replay',
  'lorawan-unknown-device', 'lorawan-fcnt-reset', 'lorawan-join-flood', 'lorawan-gateway-shift', 'lorawan-signal-shift',
  'supplier-access-outside-window',
] as const

export type PolicyId = typeof POLICY_IDS[number]

export const SEVERITIES = ['info', 'low', 'medium', 'high', 'critical'] as const

export type Severity = typeof SEVERITIES[number]

/**
 * Alerts PlaceGuard raises about itself rather than a device; their
 * `deviceId` names the part (`sink:<name>`). Not configurable policies.
 */
export const SYSTEM_ALERT_IDS = ['delivery-failing', 'pipeline-stalled', 'alert-storm'] as const
export type SystemAlertId = typeof SYSTEM_ALERT_IDS[number]
/** What an alert's `policy` may be. */
export type AlertPolicy = PolicyId | SystemAlertId

/** The facts behind a finding or an alert: values, thresholds, times. */
export type Evidence = Record<string, string | number | boolean | null>

export type AlertStatus = 'open' | 'acknowledged' | 'resolved'

/**
 * The automated response taken on an alert's device (policies'
 * `response.quarantine`): requested by the collector, `active` once the
 * broker confirms, then `ended` (its time ran out) or `lifted` (by an
 * operator); `failed` if the request could not be sent.
 */
export interface AlertResponse {
  action: 'quarantine'
  status: 'requested' | 'active' | 'ended' | 'lifted' | 'failed'
  /** ISO 8601: when the quarantine ends (or ended). */
  until: string | null
  updatedAt: string
  /** Who lifted it, or why it failed. */
  detail: string | null
}


export interface Alert {
  id: string
  policy: AlertPolicy
  severity: Severity
  deviceId: string
  site: string | null
  kind: string | null
  summary: string
  detectedAt: string
  status: AlertStatus
  evidence: Evidence
  /** STRIDE category and ATT&CK for ICS technique of the policy. */
  stride: string
  attack: string | null
  lastSeenAt: string
  /** Findings folded into this alert. */
  occurrences: number
  acknowledgedBy: string | null
  resolvedAt: string | null
  resolution: string | null
  response: AlertResponse | null
  /** Analysts' notes, oldest first. */
  comments: AlertComment[]
}

export interface AlertComment { by: string, at: string, text: string }

export type AlertChange = { change: 'opened' | 'updated' | 'acknowledged' | 'resolved' | 'response' | 'commented', alert: Alert }
