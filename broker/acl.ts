/**
 * Topic access control (docs/product.md "Topics"). Pure functions of the
 * certificate identity and the topic: a device may publish only under
 * `places/<site>/<kind>/<its id>/…` and subscribe only inside that subtree;
 * the collector role reads telemetry, security events and LoRaWAN uplinks
 * and publishes nothing but its commands to the broker (quarantine); a
 * LoRaWAN integration publishes only its own network server's event topics
 * (issue 16: the broker re-addresses them for the collector, see
 * authorize-hooks.ts) and subscribes to nothing; a supplier publishes only
 * commands, `places/<site>/<kind>/<device>/cmd`, to the kinds and sites of
 * its grant (issue 17; its windows are checked in authorize-hooks.ts, which
 * holds the clock) and subscribes to nothing. Everything not allowed
 * here is denied (STRIDE: Elevation of privilege, Information disclosure).
 */
import type { Identity, SupplierGrant } from '../pki/index.ts'
import { isValidId } from '../shared/ids.ts'
import { LORAWAN_EVENTS, LORAWAN_UPLINKS_PREFIX, parseLorawanTopic } from '../shared/lorawan.ts'
import { deviceTopicRoot, PROBE_CONTROL_TOPIC, QUARANTINE_CONTROL_TOPIC, SECURITY_EVENTS_PREFIX } from '../shared/topics.ts'

export type AclDecision = { allowed: true } | { allowed: false, reason: string }

const ALLOW: AclDecision = { allowed: true }

function hasWildcard (topic: string): boolean {
  return topic.includes('+') || topic.includes('#')
}

/** A command topic, `places/<site>/<kind>/<device>/cmd`, split; undefined for anything else. */
export function parseCommandTopic (topic: string): { site: string, kind: string, deviceId: string } | undefined {
  const parts = topic.split('/')
  if (parts.length !== 5 || parts[0] !== 'places' || parts[4] !== 'cmd') return undefined
  const [, site, kind, deviceId] = parts as [string, string, string, string]
  if (!isValidId(site) || !isValidId(deviceId)) return undefined
  return { site, kind, deviceId }
}

/**
 * A supplier may command the kinds and sites it maintains. The topic's
 * site and kind are what is checked, not the device's inventory record:
 * only a device whose certificate binds that site, kind and id can
 * subscribe to the topic (canSubscribe), so a command to a device that
 * does not exist there reaches nobody; and the broker needs no copy of
 * the fleet to decide.
 */
export function canSupplierPublish (grant: SupplierGrant | undefined, topic: string): AclDecision {
  if (!grant) return { allowed: false, reason: 'a supplier without a grant in the inventory may publish nothing' }
  const command = parseCommandTopic(topic)
  if (!command) return { allowed: false, reason: 'a supplier may publish only commands, places/<site>/<kind>/<device>/cmd' }
  if (!grant.sites.includes(command.site)) return { allowed: false, reason: `a supplier may not command site ${command.site}` }
  if (!(grant.kinds as string[]).includes(command.kind)) return { allowed: false, reason: `a supplier may not command kind ${command.kind}` }
  return ALLOW
}

export function canPublish (identity: Identity, topic: string, grant?: SupplierGrant): AclDecision {
  if (identity.role === 'supplier') return canSupplierPublish(grant, topic)
  if (identity.role === 'collector') {
    return topic === QUARANTINE_CONTROL_TOPIC || topic === PROBE_CONTROL_TOPIC ? ALLOW : { allowed: false, reason: 'the collector role may publish only broker commands' }
  }
  if (identity.role === 'integration') {
    // A network server speaks for its own devices on its own topics: a
    // device's `places/…` topic, the other network's topics or `$…` would
    // be a compromised integration impersonating something else (STRIDE: Spoofing).
    if (parseLorawanTopic(topic, identity.network)) return ALLOW
    return { allowed: false, reason: `an integration (${identity.network}) may publish only its network's ${LORAWAN_EVENTS[identity.network].join('/')} event topics` }
  }
  if (topic.startsWith('$')) return { allowed: false, reason: 'publish to a reserved $ topic' }
  const root = deviceTopicRoot(identity.site, identity.kind, identity.deviceId)
  // [MQTT-3.3.2-2] wildcards are illegal in a PUBLISH topic; the parser already refuses them.
  if (!topic.startsWith(`${root}/`) || topic.length === root.length + 1 || hasWildcard(topic)) {
    return { allowed: false, reason: 'publish outside own topic' }
  }
  return ALLOW
}

export function canSubscribe (identity: Identity, filter: string): AclDecision {
  if (identity.role === 'collector') {
    // …and the LoRaWAN integrations' events, which the broker re-addresses for it alone (shared/lorawan.ts).
    if (filter.startsWith('places/') || filter.startsWith(SECURITY_EVENTS_PREFIX) || filter.startsWith(LORAWAN_UPLINKS_PREFIX)) return ALLOW
    return { allowed: false, reason: 'subscribe outside telemetry, security events and LoRaWAN uplinks' }
  }
  // An integration publishes uplinks; it has nothing to read here (downlinks are not PlaceGuard's).
  if (identity.role === 'integration') return { allowed: false, reason: 'an integration may not subscribe' }
  // A supplier commands; reading a device's telemetry or another supplier's commands is not part of its grant (STRIDE: Information disclosure).
  if (identity.role === 'supplier') return { allowed: false, reason: 'a supplier may not subscribe' }
  const root = deviceTopicRoot(identity.site, identity.kind, identity.deviceId)
  // The literal prefix must be the device's own root, so a wildcard can only
  // widen the filter *inside* that subtree ([MQTT-4.7.1]: '#' matches the parent level too).
  if (filter === root || filter === `${root}/#` || filter.startsWith(`${root}/`)) return ALLOW
  return { allowed: false, reason: filter.startsWith('$') ? 'subscribe to a reserved $ topic' : 'subscribe outside own topic' }
}
