/**
 * A supplier's command as an entry of the operator audit trail (issue 17):
 * every command a supplier sent inside its window is recorded — who
 * (`supplier:<id>`, from its certificate), to which device, on which
 * topic, and the payload's size and SHA-256, as the broker reported them
 * (`supplier-command`); the payload itself never reaches the collector.
 * Only the broker publishes on `$SYS/placeguard/events/…` (broker/acl.ts),
 * so the event is the broker's word, not the supplier's.
 *
 * The broker gives each command an id (`details.commandId`), and the entry
 * is appended under it as its key: the same event given to the collector
 * twice (QoS 1 redelivered after a restart, a stream entry read again) is
 * one entry. An event from a broker without ids is recorded as before.
 */
import type { AuditEvent } from '../audit/index.ts'
import type { SecurityEvent } from '../shared/security-events.ts'

export function supplierCommandAudit (event: SecurityEvent): AuditEvent | undefined {
  if (event.type !== 'supplier-command' || event.deviceId === undefined) return undefined
  const details = event.details ?? {}
  const commandId = typeof details.commandId === 'string' && details.commandId !== '' ? details.commandId : undefined
  return {
    actor: `supplier:${event.deviceId}`,
    action: 'supplier.command',
    subject: typeof details.targetDeviceId === 'string' ? details.targetDeviceId : null,
    detail: {
      topic: event.topic ?? null, site: details.targetSite ?? null, kind: details.targetKind ?? null,
      payloadBytes: details.payloadBytes ?? null, payloadSha256: details.payloadSha256 ?? null,
      serial: event.serial ?? null, brokerAt: event.at, ...(commandId ? { commandId } : {}),
    },
    from: event.remoteAddress ?? null,
    ...(commandId ? { key: `supplier-command:${commandId}` } : {}),
  }
}
