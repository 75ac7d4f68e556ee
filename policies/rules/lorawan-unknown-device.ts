import type { LorawanObservation } from '../../shared/lorawan.ts'
import { visibleText } from '../../shared/untrusted-text.ts'
import type { Finding } from '../finding.ts'
import type { PolicyOf } from '../schema.ts'

/**
 * The alert key of an unknown DevEUI: per (integration, DevEUI), so one
 * device sending every minute is one alert, and the same DevEUI claimed by
 * two integrations is two (each integration is a separate suspect).
 */
export function unknownDeviceKey (integrationId: string, devEui: string): string {
  return `lorawan:${integrationId}:${devEui}`
}

/**
 * lorawan-unknown-device (STRIDE S): an integration published an event for
 * a DevEUI not registered to it. When the DevEUI is registered to another
 * integration it is the same policy at `registeredElsewhereSeverity`: from
 * where the alert stands the question is the same (an integration speaks
 * for a device it does not own; one live alert per (integration, DevEUI)),
 * but another integration's device answering here is spoofing or a device
 * moved without being re-registered, not a forgotten registration, so it
 * is raised higher and names the owner. `lastReportedMs` is when this key
 * was last reported: it is reported again only after `repeatAfter`.
 */
export function lorawanUnknownDeviceRule (policy: PolicyOf<'lorawan-unknown-device'>, observation: LorawanObservation, lastReportedMs: number | undefined, nowMs: number): Finding | undefined {
  if (observation.device) return undefined
  if (lastReportedMs !== undefined && nowMs - lastReportedMs < policy.params.repeatAfter) return undefined
  const { integrationId, registeredTo, message } = observation
  const elsewhere = registeredTo !== undefined && registeredTo !== integrationId
  return {
    policy: 'lorawan-unknown-device',
    deviceId: unknownDeviceKey(integrationId, message.devEui),
    severity: elsewhere ? policy.params.registeredElsewhereSeverity : policy.severity,
    summary: elsewhere
      ? `integration ${integrationId} published a ${message.event} for DevEUI ${message.devEui}, which is registered to integration ${registeredTo}`
      : `integration ${integrationId} published a ${message.event} for DevEUI ${message.devEui}, which is not registered to it`,
    evidence: {
      integrationId, network: observation.network, devEui: message.devEui, event: message.event, registeredTo: registeredTo ?? null,
      receivedAt: new Date(message.receivedAtMs).toISOString(), // Gateway ids are the network server's strings: escaped and capped.
      gateways: visibleText(message.gateways.map((g) => g.gatewayId).join(','), 200) || null,
    },
  }
}
