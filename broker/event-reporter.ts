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
import { CountedReport } from '../shared/counted-report.ts'
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

/** Events held at most while the broker cannot publish them (its store refuses writes: a full disk); past it the oldest go. */
export const MAX_HELD_EVENTS = 10_000
const FIRST_RETRY_MS = 500
const MAX_RETRY_MS = 30_000
/** A failing store fails every event: one log line per period, with the count. */
const LOG_EVERY_MS = 10_000

/**
 * An event the broker could not publish (its store refused the write: a
 * full disk under broker.db) is held in memory, with every event reported
 * after it, and published again in order, one at a time, with back-off,
 * until the store takes them. Listeners in this process had it at once.
 *
 * Routine comings and goings (`connect`, `disconnect`, `crl-reloaded`) are
 * not held: while its store fails the broker itself closes the connections
 * whose messages it cannot keep, and their devices' reconnects, delivered
 * late, would read as every device flapping. They are counted in the log.
 */
export function createEventReporter (options: EventReporterOptions): ReportEvent {
  const { clock, logger, deliver, publisher } = options
  const held: SecurityEvent[] = []
  let dropped = 0
  let routineNotHeld = 0
  const failures = new CountedReport(LOG_EVERY_MS)
  let retryMs = FIRST_RETRY_MS
  let timer: NodeJS.Timeout | undefined
  let sending = false

  const failed = (error: Error): void => {
    const count = failures.count()
    if (count === undefined) return
    logger.error({ err: error.message, held: held.length, failed: count, dropped, routineNotHeld }, 'security events not published; held and sent again in order (connects and disconnects are not held)')
  }
  const hold = (event: SecurityEvent): void => {
    if (QUIET.has(event.type)) {
      routineNotHeld++
      return
    }
    if (held.length >= MAX_HELD_EVENTS) {
      held.shift()
      dropped++
    }
    held.push(event)
  }
  const schedule = (delayMs: number): void => {
    if (timer || sending) return
    timer = setTimeout(sendHeld, delayMs)
    timer.unref()
  }
  function sendHeld (): void {
    timer = undefined
    const aedes = publisher()
    if (aedes.closed) {
      if (held.length > 0) logger.warn({ lost: held.length }, 'security events held back were not published before the broker closed')
      held.length = 0
      return
    }
    const event = held[0]
    if (!event) return
    sending = true
    aedes.publish(securityEventPacket(event), (error) => {
      sending = false
      if (error) {
        failed(error)
        retryMs = Math.min(retryMs * 2, MAX_RETRY_MS)
        return schedule(retryMs)
      }
      held.shift()
      retryMs = FIRST_RETRY_MS
      if (held.length > 0) return schedule(0)
      logger.info({ dropped, routineNotHeld }, 'security events held back are all published')
      dropped = 0
      routineNotHeld = 0
    })
  }

  return (type, fields) => {
    const event = securityEvent(type, fields, clock.now())
    logger[QUIET.has(type) ? 'debug' : 'warn']({ event }, `security event: ${type}`)
    deliver(event)
    const aedes = publisher()
    // aedes reads as closed before listen and after close: nothing goes out then.
    if (aedes.closed) return
    // Behind events still held, in order.
    if (held.length > 0) {
      hold(event)
      return schedule(retryMs)
    }
    aedes.publish(securityEventPacket(event), (error) => {
      if (!error) return
      // A publish already under way when the broker began to close meets the
      // closed emitter: expected at shutdown (the event was logged and handed
      // to listeners above).
      if (aedes.closed) return logger.debug({ err: error.message, type }, 'security event not published: the broker is closing')
      failed(error)
      hold(event)
      schedule(retryMs)
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
