import type { Finding } from '../finding.ts'
import type { PolicyOf } from '../schema.ts'

const DAY_MS = 86_400_000

export interface CertificateFacts { deviceId: string, serial: string, notAfter: string }

/**
 * cert-expiry: warns `warnDays` before a device certificate expires and
 * escalates to critical inside `criticalDays` — for every certificate in
 * the inventory, so an offline device is caught too. An expired
 * certificate is cert-rejected's business once the device tries it.
 */
export function certExpiryRule (policy: PolicyOf<'cert-expiry'>, certificate: CertificateFacts, nowMs: number): Finding | undefined {
  const notAfterMs = Date.parse(certificate.notAfter)
  const daysLeft = (notAfterMs - nowMs) / DAY_MS
  if (daysLeft <= 0 || daysLeft > policy.params.warnDays) return undefined
  const critical = daysLeft <= policy.params.criticalDays
  return {
    policy: 'cert-expiry',
    deviceId: certificate.deviceId,
    severity: critical ? 'critical' : policy.severity,
    summary: `certificate ${certificate.serial} expires in ${daysLeft.toFixed(1)} days (${critical ? `critical inside ${policy.params.criticalDays}` : `warning inside ${policy.params.warnDays}`})`,
    evidence: { serial: certificate.serial, notAfter: certificate.notAfter, daysLeft: Math.round(daysLeft * 10) / 10, warnDays: policy.params.warnDays, criticalDays: policy.params.criticalDays },
  }
}
