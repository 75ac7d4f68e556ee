/**
 * The aedes hooks on what a connected session may do: each PUBLISH (ACL,
 * the quarantine control topic, last wills, retained messages, rate) and
 * each SUBSCRIBE (ACL). Authorization in mosquitto's terms; who may hold
 * a session at all is connect-hooks.ts. aedes calls these; they are given a
 * small context, never the broker.
 */
import type { Client, PublishPacket, Subscription } from 'aedes'
import type { Clock } from '../shared/clock.ts'
import { printable } from '../shared/ids.ts'
import type { Logger } from '../shared/logger.ts'
import { LORAWAN_UPLINKS_PREFIX, lorawanUplinkTopic } from '../shared/lorawan.ts'
import { PROBE_CONTROL_TOPIC, QUARANTINE_CONTROL_TOPIC } from '../shared/topics.ts'
import { createHash, randomUUID } from 'node:crypto'
import { identityName, type SupplierGrant } from '../pki/index.ts'
import { openWindow } from '../shared/access-windows.ts'
import { canPublish, canSubscribe, parseCommandTopic } from './acl.ts'
import type { BrokerLimits } from './config.ts'
import { identityFields, type ReportEvent } from './event-reporter.ts'
import type { QuarantineGate } from './quarantine-gate.ts'
import { retainVerdict } from './retained-guard.ts'
import { publishBudget, type Session } from './session.ts'
import type { TlsGate } from './tls-gate.ts'
import type { BrokerClusterLink } from './cluster-link.ts'

export interface AuthorizeHooksContext {
  limits: Readonly<Pick<BrokerLimits, 'publishRatePerSec' | 'publishBurst' | 'integrationPublishRatePerSec' | 'integrationPublishBurst' | 'maxThrottleMs'>>
  clock: Clock
  logger: Logger
  report: ReportEvent
  /** The verified session behind an aedes client; it outlives the socket's close, so a last will is still judged by its identity. */
  sessionOf: (client: Client) => Session | undefined
  tls: Pick<TlsGate, 'isRevoked'>
  quarantine: Pick<QuarantineGate, 'holds' | 'onControl'>
  /** In a cluster: where accepted telemetry goes before its PUBACK. */
  cluster?: Pick<BrokerClusterLink, 'handoff'> | undefined
  /** A supplier's grant from the inventory, asked at each of its commands (issue 17). */
  supplierGrant: (supplierId: string) => SupplierGrant | undefined
  /** Undefined while the broker's store keeps writes; else when it will again (sqlite-persistence.ts whenStoring). */
  storing?: () => Promise<void> | undefined
}

/** Telemetry topics, whose messages the cluster hands to the collectors' streams. */
const TELEMETRY_TOPIC = /^places\/[^/]+\/[^/]+\/([^/]+)\/telemetry$/
/** A failing handoff is logged at most this often. */
const HANDOFF_ERROR_LOG_EVERY_MS = 10_000

const RATE_EVENT_EVERY_MS = 60_000
/** Refused subscriptions are reported at most this often per session, with the count since the last report. */
const SUBSCRIBE_DENIAL_EVENT_EVERY_MS = 10_000
/**
 * Refused subscriptions one session may make before the broker closes it. A
 * device has one subscription of its own to make; one SUBSCRIBE carrying
 * thousands of foreign filters is a probe or a denial of service (STRIDE D),
 * and answering each with an event let one packet cost seconds of broker time.
 */
const MAX_SUBSCRIBE_DENIALS = 100

export class AuthorizeHooks {
  readonly #limits: AuthorizeHooksContext['limits']
  readonly #clock: Clock
  readonly #logger: Logger
  readonly #report: ReportEvent
  readonly #session: AuthorizeHooksContext['sessionOf']
  readonly #tls: AuthorizeHooksContext['tls']
  readonly #quarantine: AuthorizeHooksContext['quarantine']
  readonly #cluster: AuthorizeHooksContext['cluster']
  readonly #supplierGrant: AuthorizeHooksContext['supplierGrant']
  readonly #storing: NonNullable<AuthorizeHooksContext['storing']>
  #handoffFailedAt = 0
  #handoffFailures = 0
  /** Sessions the broker itself ended for a security reason (ACL violation, rate): their wills stay unpublished. */
  readonly #endedByBroker = new WeakMap<Session, string>()
  /** When a device's refused retain was last logged, per session. */
  readonly #retainRefusedAt = new WeakMap<Session, number>()
  #retainedRefused = 0
  #integrationRetainStripped = 0

  constructor (context: AuthorizeHooksContext) {
    this.#limits = context.limits
    this.#clock = context.clock
    this.#logger = context.logger
    this.#report = context.report
    this.#session = context.sessionOf
    this.#tls = context.tls
    this.#quarantine = context.quarantine
    this.#cluster = context.cluster
    this.#supplierGrant = context.supplierGrant
    this.#storing = context.storing ?? (() => undefined)
  }

  authorizePublish (client: Client | null, packet: PublishPacket, accept: (error?: Error | null) => void): void {
    const session = client && this.#session(client)
    if (!session) return accept(new Error('no session'))
    const done = this.#cluster && session.identity.role !== 'collector' ? this.#handingOff(session, packet, accept) : accept
    // aedes hands a last will to this hook from client.close(), after the
    // connection is gone [MQTT-3.1.2-8].
    if (client.closed && packet === (client as Client & { will?: unknown }).will) {
      const withheld = this.#willWithheldBecause(session)
      if (withheld) {
        this.#logger.info({ client: identityName(session.identity), why: withheld }, 'last will not published')
        return done(new Error(`last will withheld: ${withheld}`))
      }
    }
    const grant = session.identity.role === 'supplier' ? this.#supplierGrant(session.identity.supplierId) : undefined
    const decision = canPublish(session.identity, packet.topic, grant)
    if (!decision.allowed) {
      this.#report('acl-denied', { ...identityFields(session.identity), remoteAddress: session.remoteAddress, reason: decision.reason, topic: printable(packet.topic, 200) })
      // [MQTT-3.3.5-2] 3.1.1 cannot refuse a PUBLISH: the server acknowledges
      // it or closes the connection. PlaceGuard closes (as AWS IoT Core does),
      // so a compromised device's attempt is both blocked and visible.
      this.#endedByBroker.set(session, 'ACL violation')
      return done(new Error(decision.reason))
    }
    // A supplier's command is reported once admitted, below: one the rate limit refuses was never sent.
    let admitted: (() => void) | undefined
    if (session.identity.role === 'supplier') {
      admitted = this.#supplierCommand(session, grant!, packet)
      if (!admitted) return done(new Error('supplier command outside its access windows'))
    } else if (session.identity.role === 'integration') this.#readdress(session.identity.integrationId, packet)
    else if (packet.retain) this.#limitRetain(session, packet)
    if (packet.topic === QUARANTINE_CONTROL_TOPIC) {
      // Acted on here, before PUBACK; never kept as a retained message.
      packet.retain = false
      this.#quarantine.onControl(identityName(session.identity), packet.payload as Buffer)
      return done(null)
    }
    if (packet.topic === PROBE_CONTROL_TOPIC) {
      // The collector's probe: its PUBACK is the answer (collector/broker-probe.ts). While the broker's store fails
      // (a full disk) devices' messages are refused and their connections closed, so the answer waits until the
      // store keeps writes again: meanwhile detection holds its judgement of silence.
      packet.retain = false
      const storing = this.#storing()
      if (storing) return void storing.then(() => done(null))
      return done(null)
    }
    if (!session.throttle) {
      admitted?.()
      return done(null)
    }
    const now = this.#clock.now()
    // Holding the callback holds aedes' read loop for this client (see
    // read-backpressure.ts): TCP back-pressure slows the device down.
    const verdict = session.throttle.admit(() => {
      admitted?.()
      done(null)
    })
    if (verdict === 'now') return
    const { ratePerSec: rate, burst } = publishBudget(session.identity, this.#limits)!
    const { maxThrottleMs } = this.#limits
    if (verdict === 'overflow') {
      this.#report('rate-limited', {
        ...identityFields(session.identity, { ratePerSec: rate, burst, disconnected: true }), remoteAddress: session.remoteAddress,
        reason: `publishing so far beyond ${rate}/s that a message would wait over ${maxThrottleMs} ms; disconnected`,
      })
      this.#endedByBroker.set(session, 'rate limit')
      return done(new Error('publish backlog over the rate limit'))
    }
    if (now - session.rateLimitedAt >= RATE_EVENT_EVERY_MS) {
      session.rateLimitedAt = now
      this.#report('rate-limited', {
        ...identityFields(session.identity, { ratePerSec: rate, burst }), remoteAddress: session.remoteAddress,
        reason: `publishing faster than ${rate}/s (burst ${burst}); reads slowed`,
      })
    }
  }

  /**
   * A supplier's command that passed the ACL: refused when its windows have
   * closed since it connected (the session is then closed, as for an ACL
   * violation [MQTT-3.3.5-2]); otherwise answers how to report it as
   * `supplier-command`, which the caller does once the rate limit admits
   * the command, so the collector records in the audit trail only what was
   * sent — the payload's size and SHA-256, never the payload (a command may
   * carry a setpoint or a credential). The event's `commandId` is drawn
   * here, once per command: an event redelivered to the collector at QoS 1
   * carries the same id, and the trail records it once. Never retained: a
   * retained command would reach the device again at each reconnect,
   * after the window had closed.
   */
  #supplierCommand (session: Session, grant: SupplierGrant, packet: PublishPacket): (() => void) | undefined {
    const identity = session.identity
    const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload)
    const topic = printable(packet.topic, 200)
    if (!openWindow(grant.windows, this.#clock.now())) {
      this.#report('supplier-outside-window', {
        ...identityFields(identity, { phase: 'command' }), remoteAddress: session.remoteAddress, serial: session.serial, topic,
        reason: 'a supplier command after its access windows closed',
      })
      this.#endedByBroker.set(session, 'supplier outside its access windows')
      return undefined
    }
    packet.retain = false
    const command = parseCommandTopic(packet.topic)!
    const fields = {
      ...identityFields(identity, {
        commandId: randomUUID(), targetDeviceId: command.deviceId, targetSite: command.site, targetKind: command.kind,
        payloadBytes: payload.length, payloadSha256: createHash('sha256').update(payload).digest('hex'),
      }),
      remoteAddress: session.remoteAddress, serial: session.serial, topic, reason: 'supplier command delivered',
    }
    return () => this.#report('supplier-command', fields)
  }

  /**
   * Why a session's last will must not be published, if it must not. A will
   * tells subscribers that a device dropped off unexpectedly; a session the
   * broker ended on purpose (revoked, quarantined, expired certificate, ACL
   * violation, rate) did not, and its will would let a device it just threw
   * out publish one more message (STRIDE: Spoofing). MQTT 3.1.1 §3.1.2.5
   * publishes a will when the server closes for a protocol error; these are
   * decisions about the device, not errors in its packets.
   */
  #willWithheldBecause (session: Session): string | undefined {
    const ended = this.#endedByBroker.get(session)
    if (ended) return ended
    if (this.#tls.isRevoked(session.serial)) return 'certificate revoked'
    if (session.identity.role === 'device' && this.#quarantine.holds(session.identity.deviceId)) return 'device quarantined'
    if (session.identity.role === 'integration' && this.#quarantine.holds(session.identity.integrationId)) return 'integration quarantined'
    if (session.identity.role === 'supplier' && this.#quarantine.holds(session.identity.supplierId)) return 'supplier quarantined'
    if (session.notAfter <= this.#clock.now()) return 'certificate expired'
    return undefined
  }

  /**
   * An integration's accepted publish goes to
   * `$SYS/placeguard/lorawan/<integrationId>/<its topic>` (shared/lorawan.ts):
   * aedes publishes the packet this hook was handed, after its callback, so
   * changing `packet.topic` here is what subscribers and the cluster stream
   * see. Only the collector role may read that prefix, so a network's
   * uplinks reach no one else, and which integration sent one is the
   * certificate's word. `$SYS` topics are not matched by `#` [MQTT-4.7.2-1].
   *
   * Its retain flag is dropped, not refused: a retained uplink would be
   * replayed to every new collector subscription as a fresh one — a
   * frame counter going back, a reading twice — and refusing means closing
   * the connection [MQTT-3.3.5-2], cutting off the integration's whole fleet
   * for a setting. The message is still delivered, and the strips counted.
   */
  #readdress (integrationId: string, packet: PublishPacket): void {
    if (packet.retain) {
      packet.retain = false
      this.#integrationRetainStripped++
    }
    packet.topic = lorawanUplinkTopic(integrationId, packet.topic)
  }

  /** Retained PUBLISHes from integrations delivered unretained (#readdress), since start. */
  get integrationRetainStripped (): number {
    return this.#integrationRetainStripped
  }

  /** A device keeps at most one retained message (retained-guard.ts); others go out unretained, counted. */
  #limitRetain (session: Session, packet: PublishPacket): void {
    const verdict = retainVerdict(session.identity, packet.topic, (packet.payload as Buffer).length)
    if (verdict.keep) return
    packet.retain = false
    this.#retainedRefused++
    const now = this.#clock.now()
    if (now - (this.#retainRefusedAt.get(session) ?? 0) < RATE_EVENT_EVERY_MS) return
    this.#retainRefusedAt.set(session, now)
    this.#logger.warn({ client: identityName(session.identity), topic: printable(packet.topic, 200), why: verdict.reason }, 'retained message not kept')
  }

  /** Retained PUBLISHes from devices delivered without being stored (retained-guard.ts), since start. */
  get retainedRefused (): number {
    return this.#retainedRefused
  }

  /**
   * In a cluster, a device's telemetry (or an integration's uplink) is
   * accepted only once the cluster's stream holds it: aedes sends the
   * PUBACK after this hook's callback, so the publisher is never told
   * "stored" about a message only one node's memory holds. A refusal closes
   * the connection unacknowledged. The topic is read when the hook accepts,
   * so an integration's goes in re-addressed (#readdress); its partition
   * key is the publishing client's id, the device's or the integration's,
   * which keeps each publisher's messages in order on one partition.
   */
  #handingOff (session: Session, packet: PublishPacket, accept: (error?: Error | null) => void): (error?: Error | null) => void {
    return (error) => {
      if (error) return accept(error)
      const { identity } = session
      const partitionKey = identity.role === 'integration'
        ? (packet.topic.startsWith(LORAWAN_UPLINKS_PREFIX) ? identity.integrationId : undefined)
        : TELEMETRY_TOPIC.exec(packet.topic)?.[1]
      if (partitionKey === undefined) return accept(null)
      this.#cluster!.handoff({ partitionKey, topic: packet.topic, payload: packet.payload as Buffer, receivedAtMs: this.#clock.now() })
        .then(() => accept(null), (failure: Error) => {
          this.#handoffFailures++
          const now = this.#clock.now()
          if (now - this.#handoffFailedAt >= HANDOFF_ERROR_LOG_EVERY_MS) {
            this.#logger.error({ err: failure.message, failures: this.#handoffFailures }, 'telemetry not handed to the cluster stream; the device is disconnected unacknowledged and will send it again')
            this.#handoffFailedAt = now
          }
          accept(new Error(`cluster handoff failed: ${failure.message}`))
        })
    }
  }

  authorizeSubscribe (client: Client | null, subscription: Subscription, done: (error: Error | null, subscription?: Subscription | null) => void): void {
    const session = client && this.#session(client)
    if (!session) return done(new Error('no session'))
    const decision = canSubscribe(session.identity, subscription.topic)
    if (decision.allowed) return done(null, subscription)
    const denials = session.subscribeDenials
    denials.count++
    denials.unreported++
    const now = this.#clock.now()
    if (denials.count > MAX_SUBSCRIBE_DENIALS) {
      this.#endedByBroker.set(session, 'ACL violation')
      if (denials.count === MAX_SUBSCRIBE_DENIALS + 1) {
        this.#report('acl-denied', {
          ...identityFields(session.identity, { sinceLastReport: denials.unreported, disconnected: true }), remoteAddress: session.remoteAddress, topic: printable(subscription.topic, 200),
          reason: `more than ${MAX_SUBSCRIBE_DENIALS} refused subscriptions in one session; connection closed`,
        })
      }
      return done(new Error('too many refused subscriptions'))
    }
    if (now - denials.reportedAt >= SUBSCRIBE_DENIAL_EVENT_EVERY_MS) {
      this.#report('acl-denied', {
        ...identityFields(session.identity, { sinceLastReport: denials.unreported }), remoteAddress: session.remoteAddress, reason: decision.reason, topic: printable(subscription.topic, 200),
      })
      denials.reportedAt = now
      denials.unreported = 0
    }
    // A null subscription answers 0x80 (failure) in the SUBACK [MQTT-3.9.3].
    done(null, null)
  }

}
