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
 * `reportedRecently` counts how many of the integration's unknown DevEUIs were
 * reported within `repeatAfter`: past `devEuisPerIntegration` the rest
 * fold into one alert for the integration (a spoofed one never does).
 */
export function lorawanUnknownDeviceRule (policy: PolicyOf<'lorawan-unknown-device'>, observation: LorawanObservation, lastReportedMs: number | undefined, nowMs: number, reportedRecently: () => number = () => 0): Finding | undefined {
  if (observation.device) return undefined
  if (lastReportedMs !== undefined && nowMs - lastReportedMs < policy.params.repeatAfter) return undefined
  const { integrationId, registeredTo, message } = observation
  const elsewhere = registeredTo !== undefined && registeredTo !== integrationId
  // A network server connected before its fleet was registered: one alert for the integration, not a page per DevEUI.
  const reported = elsewhere ? 0 : reportedRecently()
  if (reported >= policy.params.devEuisPerIntegration) {
    return {
      policy: 'lorawan-unknown-device',
      deviceId: unknownDeviceKey(integrationId, 'unregistered'),
      severity: policy.severity,
      summary: `integration ${integrationId} publishes for more than ${policy.params.devEuisPerIntegration} DevEUIs not registered to it (latest ${message.devEui}): register them, or find out why it speaks for them`,
      evidence: { integrationId, network: observation.network, devEui: message.devEui, event: message.event, devEuisReported: reported, devEuisPerIntegration: policy.params.devEuisPerIntegration, receivedAt: new Date(message.receivedAtMs).toISOString() },
    }
  }
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
