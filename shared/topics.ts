import type { DeviceKind } from './ids.ts'

/** Security events from the broker: `$SYS/placeguard/events/<type>` (docs/product.md). */
export const SECURITY_EVENTS_PREFIX = '$SYS/placeguard/events/'
export const SECURITY_EVENTS_FILTER = `${SECURITY_EVENTS_PREFIX}#`

/** Everything a device may publish or subscribe to lies under this prefix. */
export function deviceTopicRoot (site: string, kind: DeviceKind, deviceId: string): string {
  return `places/${site}/${kind}/${deviceId}`
}

export function telemetryTopic (site: string, kind: DeviceKind, deviceId: string): string {
  return `${deviceTopicRoot(site, kind, deviceId)}/telemetry`
}

/**
 * Commands to the broker from the collector role (PlaceGuard's own
 * extension): the only topics that role may publish to. The broker acts on
 * them and delivers them to no one.
 */
export const CONTROL_PREFIX = '$SYS/placeguard/control/'
export const QUARANTINE_CONTROL_TOPIC = `${CONTROL_PREFIX}quarantine`
/** The collector's probe (collector/broker-probe.ts): acknowledged, delivered to no one; its PUBACK says the broker is answering. */
export const PROBE_CONTROL_TOPIC = `${CONTROL_PREFIX}probe`
