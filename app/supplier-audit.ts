/**
 * A supplier's command as an entry of the operator audit trail (issue 17):
 * every command a supplier sent inside its window is recorded — who
 * (`supplier:<id>`, from its certificate), to which device, on which
 * topic, and the payload's size and SHA-256, as the broker reported them
 * (`supplier-command`); the payload itself never reaches the collector.
 * Only the broker publishes on `$SYS/placeguard/events/…` (broker/acl.ts),
 * so the event is the broker's word, not the supplier's.
 */
import type { AuditEvent } from '../audit/index.ts'
import type { SecurityEvent } from '../shared/security-events.ts'

export function supplierCommandAudit (event: SecurityEvent): AuditEvent | undefined {
  if (event.type !== 'supplier-command' || event.deviceId === undefined) return undefined
  const details = event.details ?? {}
  return {
    actor: `supplier:${event.deviceId}`,
    action: 'supplier.command',
    subject: typeof details.targetDeviceId === 'string' ? details.targetDeviceId : null,
    detail: {
      topic: event.topic ?? null, site: details.targetSite ?? null, kind: details.targetKind ?? null,
      payloadBytes: details.payloadBytes ?? null, payloadSha256: details.payloadSha256 ?? null,
      serial: event.serial ?? null, brokerAt: event.at,
    },
    from: event.remoteAddress ?? null,
  }
}
