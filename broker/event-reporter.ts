/**
 * The broker's security events, built and sent: each goes to the log, to
 * listeners in this process (the broker's `security-event`), and out on
 * `$SYS/placeguard/events/<type>` at QoS 1 for the collector, which may run
 * in another process. The broker's parts are handed a `ReportEvent`, never
 * the broker itself.
 */
import type { Aedes, PublishPacket } from 'aedes'
import type { Clock } from '../shared/clock.ts'
import type { Logger } from '../shared/logger.ts'
import { withoutUndefined } from '../shared/objects.ts'
import type { SecurityEvent, SecurityEventType } from '../shared/security-events.ts'
import { SECURITY_EVENTS_PREFIX } from '../shared/topics.ts'
import { type Identity, identityName } from '../pki/index.ts'

export type EventFields = Omit<SecurityEvent, 'type' | 'at'>

export type ReportEvent = (type: SecurityEventType, fields: EventFields) => void

/** What the reporter needs of aedes: to know it is serving, and to publish. */
export type EventPublisher = Pick<Aedes, 'closed' | 'publish'>

export interface EventReporterOptions {
  clock: Clock
  logger: Logger
  /** Hands the event to listeners in this process. */
  deliver: (event: SecurityEvent) => void
  /** Read at each event: aedes is built after the parts that report. */
  publisher: () => EventPublisher
}

/** Routine comings and goings are logged at debug; everything else at warn. */
const QUIET: ReadonlySet<SecurityEventType> = new Set(['connect', 'disconnect', 'crl-reloaded'])

export function createEventReporter (options: EventReporterOptions): ReportEvent {
  const { clock, logger, deliver, publisher } = options
  return (type, fields) => {
    const event = securityEvent(type, fields, clock.now())
    logger[QUIET.has(type) ? 'debug' : 'warn']({ event }, `security event: ${type}`)
    deliver(event)
    const aedes = publisher()
    // aedes reads as closed before listen and after close: nothing goes out then.
    if (aedes.closed) return
    aedes.publish(securityEventPacket(event), (error) => {
      if (!error) return
      // A publish already under way when the broker began to close meets the
      // closed emitter: expected at shutdown (the event was logged and handed
      // to listeners above), an error at any other time.
      if (aedes.closed) logger.debug({ err: error.message, type }, 'security event not published: the broker is closing')
      else logger.error({ err: error.message, type }, 'security event not published')
    })
  }
}

export function securityEvent (type: SecurityEventType, fields: EventFields, now: number): SecurityEvent {
  return { type, at: new Date(now).toISOString(), ...withoutUndefined(fields) }
}

export function securityEventPacket (event: SecurityEvent): PublishPacket {
  return {
    cmd: 'publish', topic: `${SECURITY_EVENTS_PREFIX}${event.type}`, payload: Buffer.from(JSON.stringify(event)),
    qos: 1, retain: false, dup: false,
  } as PublishPacket
}

/**
 * The fields an event carries about a verified identity, with the event's
 * own `details`. An integration's events carry its id as `deviceId` (it is
 * its client id, in the devices' namespace, so the per-device policies
 * such as acl-violation alert on it) and `details.role: 'integration'`, so
 * nothing mistakes it for a device.
 */
export function identityFields (identity: Identity, details?: SecurityEvent['details']): Pick<SecurityEvent, 'deviceId' | 'site' | 'kind' | 'details'> {
  switch (identity.role) {
    case 'device': return { deviceId: identity.deviceId, site: identity.site, kind: identity.kind, details }
    case 'collector': return { deviceId: identityName(identity), details }
    case 'integration': return { deviceId: identity.integrationId, details: { role: 'integration', network: identity.network, ...details } }
    case 'supplier': return { deviceId: identity.supplierId, details: { role: 'supplier', ...details } }
  }
}
