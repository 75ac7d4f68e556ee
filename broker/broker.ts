/**
 * The PlaceGuard broker: aedes behind Node's TLS with the fleet CA.
 *
 * Trust flows one way: a TLS handshake verified against the fleet CA and CRL
 * yields an Identity read from the certificate; every later decision (client
 * id, topics, rate, revocation) is taken against that identity, never against
 * what the MQTT packets claim.
 */
import { EventEmitter } from 'node:events'
import type { AddressInfo } from 'node:net'
import type { TLSSocket } from 'node:tls'
import { Aedes, type AedesOptions, type AuthenticateError, type Client, type PublishPacket, type Subscription } from 'aedes'
import { type Clock, systemClock } from '../shared/clock.ts'
import { isReservedId, printable } from '../shared/ids.ts'
import type { Logger } from '../shared/logger.ts'
import { QUARANTINE_CONTROL_TOPIC } from '../shared/topics.ts'
import { type Identity, identityName, identityUri } from '../pki/index.ts'
import { canPublish, canSubscribe } from './acl.ts'
import { installPacketSizeLimit } from './packet-size-limit.ts'
import { createMqEmitter } from './mq-fast-queue.ts'
import { installReadBackpressure } from './read-backpressure.ts'
import type { SecurityEvent } from '../shared/security-events.ts'
import { createEventReporter, identityFields, type ReportEvent } from './event-reporter.ts'
import { judgeHandshake } from './handshake-verdict.ts'
import type { QuarantineEntry } from './quarantine.ts'
import { QuarantineGate, type QuarantineRequest } from './quarantine-gate.ts'
import { retainVerdict } from './retained-guard.ts'
import { type Session, type SessionInfo, newSession, sessionInfo } from './session.ts'
import { SessionOwners } from './session-owners.ts'
import { installStringValidity } from './topic-validity.ts'
import { TlsGate } from './tls-gate.ts'

export interface BrokerTlsFiles {
  caCert: string
  serverCert: string
  serverKey: string
  crl: string
}

export interface BrokerLimits {
  /** Largest MQTT packet accepted, in bytes; a larger one closes the connection. */
  maxPacketBytes: number
  /** All connections at once, authenticated or not; further ones are dropped before the handshake. */
  maxConnections: number
  /** Of maxConnections, the slots only authenticated sessions may hold: peers still in their handshake never get them. */
  reservedConnections: number
  /** Connections from one source address (IPv6: one /64) not yet past their MQTT CONNECT; connected sessions do not count (devices behind one NAT share an address). */
  maxConnectionsPerAddress: number
  /** TLS handshakes in progress at once from one source address (IPv6: one /64). */
  maxHandshakesPerAddress: number
  /** Concurrent sessions holding the collector certificate. */
  maxCollectorSessions: number
  /** Sustained publishes per second per device; beyond it the device's socket is read more slowly. */
  publishRatePerSec: number
  /** Publishes a device may send back to back before the rate applies. */
  publishBurst: number
  /** Longest a publish is held by the rate limit; a device further behind is disconnected. */
  maxThrottleMs: number
  /** Time to finish the TLS handshake, from the TCP accept; bytes trickling in do not extend it. */
  handshakeTimeoutMs: number
  /** Time from handshake to MQTT CONNECT. */
  connectTimeoutMs: number
  /** How often the CRL file is checked for changes. */
  crlPollMs: number
}

export const DEFAULT_BROKER_LIMITS: Readonly<BrokerLimits> = Object.freeze({
  maxPacketBytes: 256 * 1024,
  maxConnections: 20_000,
  reservedConnections: 1_000,
  maxConnectionsPerAddress: 1_000,
  maxHandshakesPerAddress: 20,
  maxCollectorSessions: 4,
  publishRatePerSec: 5,
  publishBurst: 50,
  maxThrottleMs: 30_000,
  handshakeTimeoutMs: 10_000,
  connectTimeoutMs: 10_000,
  crlPollMs: 1_000,
})

export interface BrokerOptions {
  tls: BrokerTlsFiles
  host?: string
  port: number
  limits?: Partial<BrokerLimits>
  logger: Logger
  clock?: Clock
  /** aedes persistence and mqemitter, e.g. the Redis pair for a cluster. */
  aedes?: Pick<AedesOptions, 'persistence' | 'mq' | 'id'>
  /** Where quarantines are kept across restarts (e.g. `<data-dir>/quarantine.json`); in memory without it. */
  quarantineFile?: string
  /** Where the owner of each persistent session is kept across restarts (e.g. `<data-dir>/session-owners.jsonl`); in memory without it. */
  sessionOwnersFile?: string
}

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

export class PlaceGuardBroker extends EventEmitter<{ 'security-event': [SecurityEvent] }> {
  readonly aedes: Aedes
  readonly limits: Readonly<BrokerLimits>
  readonly #logger: Logger
  readonly #clock: Clock
  readonly #gate: TlsGate
  /** Lookup by socket outlives the socket's close, so a last will is still judged by its identity. */
  readonly #sessions = new WeakMap<TLSSocket, Session>()
  /** Open connections, for quarantine and the connection count (the TLS gate ends sessions on expiry and revocation). */
  readonly #live = new Map<TLSSocket, Session>()
  #collectorSessions = 0
  readonly #report: ReportEvent
  readonly #quarantine: QuarantineGate
  readonly #sessionOwners: SessionOwners
  /** Sessions the broker itself ended for a security reason (ACL violation, rate): their wills stay unpublished. */
  readonly #endedByBroker = new WeakMap<Session, string>()
  /** When a device's refused retain was last logged, per session. */
  readonly #retainRefusedAt = new WeakMap<Session, number>()
  #retainedRefused = 0

  constructor (options: BrokerOptions) {
    super()
    this.#logger = options.logger
    this.#clock = options.clock ?? systemClock
    this.limits = Object.freeze({ ...DEFAULT_BROKER_LIMITS, ...options.limits })
    this.#report = createEventReporter({
      clock: this.#clock, logger: this.#logger,
      deliver: (event) => this.emit('security-event', event),
      publisher: () => this.aedes,
    })
    this.#gate = new TlsGate({
      tls: options.tls, host: options.host, port: options.port, limits: this.limits, clock: this.#clock, logger: this.#logger,
      emit: this.#report,
      onSecureConnection: (socket) => this.#onSecureConnection(socket),
    })
    this.#quarantine = new QuarantineGate({
      file: options.quarantineFile, clock: this.#clock, logger: this.#logger,
      emit: this.#report,
      dropSessions: (deviceId) => {
        let dropped = 0
        for (const [socket, session] of this.#live) {
          if (session.identity.role !== 'device' || session.identity.deviceId !== deviceId) continue
          socket.destroy()
          dropped++
        }
        return dropped
      },
    })
    this.#sessionOwners = new SessionOwners(options.sessionOwnersFile)
    this.aedes = new Aedes({
      id: options.aedes?.id,
      persistence: options.aedes?.persistence,
      // mqemitter's queue shifts an Array (O(n)); under a fast TLS publisher
      // that made aedes quadratic. See broker/mq-fast-queue.ts.
      mq: options.aedes?.mq ?? createMqEmitter({ concurrency: 100 }),
      connectTimeout: this.limits.connectTimeoutMs,
      // Client ids are device ids (up to 64 characters), not MQTT 3.1's 23.
      maxClientsIdLength: 64,
      preConnect: (client, packet, done) => this.#preConnect(client, packet, done),
      authenticate: (client, _username, _password, done) => this.#authenticate(client, done),
      authorizePublish: (client, packet, done) => this.#authorizePublish(client, packet, done),
      authorizeSubscribe: (client, subscription, done) => this.#authorizeSubscribe(client, subscription, done),
    })
    this.aedes.on('clientReady', (client) => this.#onClientReady(client))
    this.aedes.on('clientDisconnect', (client) => this.#onClientDisconnect(client))
    this.aedes.on('clientError', (client, error) => this.#logger.debug({ client: client.id, err: error.message }, 'client error'))
  }

  async listen (): Promise<AddressInfo> {
    await this.#loadCrl(true)
    await this.aedes.listen() // sets up persistence; aedes ignores clients until then
    const address = await this.#gate.listen()
    this.#quarantine.start()
    this.#logger.info({ port: address.port, host: address.address }, 'broker listening (mTLS)')
    return address
  }

  /** Graceful stop: no new connections, every client disconnected, then closed. */
  async close (): Promise<void> {
    this.#quarantine.stop()
    await this.#gate.close()
    await new Promise<void>((resolve) => this.aedes.close(() => resolve()))
  }

  get connectionCount (): number {
    return this.#live.size
  }

  sessionOf (client: Client): SessionInfo | undefined {
    const session = this.#session(client)
    return session && sessionInfo(session)
  }

  #session (client: Client): Session | undefined {
    return this.#sessions.get(client.conn as TLSSocket)
  }

  /** aedes' live clients by id (typed loosely upstream). */
  get #clients (): Record<string, Client | undefined> {
    return (this.aedes as unknown as { clients: Record<string, Client | undefined> }).clients
  }

  /** Re-reads the CRL now (also done by polling the file). */
  async reloadCrl (): Promise<void> {
    await this.#loadCrl(false)
  }

  // --- quarantine (broker/quarantine-gate.ts) -----------------------------------

  /**
   * Refuses a device for `durationMs`: its live session is dropped now and
   * its CONNECTs are refused until then. Emits `quarantined`.
   */
  quarantine (request: QuarantineRequest): QuarantineEntry {
    return this.#quarantine.quarantine(request)
  }

  /** Ends a quarantine before its time. Emits `quarantine-lifted`; undefined if the device was not quarantined. */
  liftQuarantine (deviceId: string, by: string, reason?: string): QuarantineEntry | undefined {
    return this.#quarantine.lift(deviceId, by, reason)
  }

  /** Quarantines in force. */
  quarantined (): QuarantineEntry[] {
    return this.#quarantine.inForce()
  }

  // --- TLS ---------------------------------------------------------------

  async #loadCrl (initial: boolean): Promise<void> {
    await this.#gate.loadCrl(initial)
  }

  #onSecureConnection (socket: TLSSocket): void {
    socket.on('error', () => {}) // reported through aedes or by the close below
    const verdict = judgeHandshake(socket, { ca: this.#gate.ca, isRevoked: (serial) => this.#gate.isRevoked(serial), clock: this.#clock })
    if (!verdict.admit) {
      if ('rejected' in verdict) this.#gate.reportRejectedCertificate(verdict.rejected.who, verdict.rejected.fields)
      else this.#report('auth-failed', verdict.noIdentity)
      socket.destroy()
      return
    }
    const { identity, serial, notAfter, remoteAddress } = verdict
    const now = this.#clock.now()
    if (!this.#gate.admitSession(socket, { serial, notAfter, fields: { ...identityFields(identity), remoteAddress } })) {
      socket.destroy()
      return
    }
    this.#sessions.set(socket, newSession({ identity, serial, notAfter, remoteAddress, connectedAt: now }, this.limits, this.#clock))
    this.#live.set(socket, this.#sessions.get(socket)!)
    socket.once('close', () => {
      this.#live.delete(socket)
      this.#sessions.get(socket)?.throttle?.flush()
    })
    const client = this.aedes.handle(socket) as unknown as Client
    installReadBackpressure(client)
    installPacketSizeLimit(client, this.limits.maxPacketBytes, (size) => {
      this.#report('packet-too-large', { ...identityFields(identity), remoteAddress, reason: `packet of ${size} bytes exceeds the ${this.limits.maxPacketBytes}-byte limit; connection closed`, details: { bytes: size } })
    })
  }

  // --- MQTT hooks ------------------------------------------------------------

  #preConnect (client: Client, packet: { clientId: string, will?: { topic: string } | null }, done: (error: Error | null, ok: boolean) => void): void {
    const session = this.#session(client)
    if (!session) return done(new Error('connection without a verified identity'), false)
    // preConnect runs while the parser is still on the CONNECT, so every
    // later packet's strings are checked on their raw bytes [MQTT-1.5.3].
    installStringValidity(client, (packetType, escaped, defect) => this.#onBadString(session, packetType, escaped, defect))
    // The CONNECT's own strings are decoded already, bad bytes as U+FFFD: a
    // will topic holding U+FFFD or U+0000 is refused too (a device's topics
    // are its ids and ASCII names; a will is published with its identity).
    const bad = [packet.clientId, packet.will?.topic ?? ''].find((text) => text.includes('\u0000') || text.includes('\uFFFD'))
    if (bad !== undefined) {
      this.#onBadString(session, 'connect', printable(bad, 200), 'ill-formed UTF-8 or U+0000 [MQTT-1.5.3]')
      return done(new Error('CONNECT string with ill-formed UTF-8 or U+0000'), false)
    }
    // [MQTT-3.1.3-6] a zero-length client id is assigned by the server: here, the device id.
    if (packet.clientId === '' && session.identity.role === 'device') packet.clientId = session.identity.deviceId
    done(null, true)
  }

  #authenticate (client: Client, done: (error: AuthenticateError | null, ok: boolean | null) => void): void {
    const session = this.#session(client)!
    const { identity } = session
    const refuse = (reason: string, returnCode: number, code: string): void => {
      this.#report('auth-failed', { ...identityFields(identity), remoteAddress: session.remoteAddress, serial: session.serial, reason, code })
      done(Object.assign(new Error(reason), { returnCode }) as AuthenticateError, false)
    }
    if (identity.role === 'device') {
      if (client.id !== identity.deviceId) {
        return refuse(`client id "${printable(client.id, 64)}" is not the certificate's device id`, 2, 'CLIENT_ID_MISMATCH')
      }
      // A certificate signed before the PKI refused reserved ids (or by a
      // careless CA) must not pass for the collector or the operator CLI:
      // with their client id it would resume their sessions (STRIDE: Spoofing).
      if (isReservedId(identity.deviceId)) {
        return refuse(`device id "${identity.deviceId}" is reserved for PlaceGuard's own clients`, 5, 'RESERVED_ID')
      }
      const existing = this.#clients[client.id]
      if (existing && existing !== client) {
        const other = this.#session(existing)
        // [MQTT-3.1.4-2] the new connection takes over; a clone shows as repeated takeovers.
        this.#report('duplicate-identity', {
          ...identityFields(identity), remoteAddress: session.remoteAddress, serial: session.serial,
          reason: 'a second connection presented the same identity; the earlier one is disconnected',
          details: { otherRemoteAddress: other?.remoteAddress ?? 'unknown', sameCertificate: other?.serial === session.serial },
        })
      }
      const quarantined = this.#quarantine.refusal(identity.deviceId)
      if (quarantined) {
        // CONNACK 5 (not authorized): the device is known and valid, but not welcome for now.
        // A device that keeps retrying is reported once a minute, not at every attempt.
        if (!quarantined.report) return done(Object.assign(new Error(quarantined.reason), { returnCode: 5 }) as AuthenticateError, false)
        return refuse(quarantined.reason, 5, 'QUARANTINED')
      }
    } else {
      if (!/^collector(-[a-z0-9-]{1,54})?$/.test(client.id)) {
        return refuse(`client id "${printable(client.id, 64)}" is not a collector client id (collector or collector-<name>)`, 2, 'CLIENT_ID_MISMATCH')
      }
      if (this.#collectorSessions >= this.limits.maxCollectorSessions && !this.#clients[client.id]) {
        return refuse(`collector session limit (${this.limits.maxCollectorSessions}) reached`, 3, 'SESSION_LIMIT')
      }
    }
    const ownership = this.#claimSession(client, identity)
    if (ownership) return refuse(ownership, 5, 'SESSION_OWNER_MISMATCH')
    done(null, true)
  }

  /**
   * Binds a client id's persistent session to the identity that made it;
   * the refusal reason, or undefined once `client` may have the session.
   *
   * A CONNECT with clean=false from another identity is refused (CONNACK 5)
   * rather than given a wiped session: wiping would let any certificate
   * that can present the id destroy the owner's queued QoS 1 messages — for
   * the collector, telemetry not yet stored — while refusing keeps them for
   * their owner and makes the attempt visible. A clean=true CONNECT starts a
   * fresh session and discards the old one [MQTT-3.1.2-6] (a device re-issued
   * for another site, say); only a live connection of another identity is
   * never taken over. Devices cannot reach the collector's ids at all: they
   * are reserved (above).
   */
  #claimSession (client: Client, identity: Identity): string | undefined {
    const owner = identityUri(identity)
    const existing = this.#clients[client.id]
    const live = existing && existing !== client ? this.#session(existing) : undefined
    if (live && identityUri(live.identity) !== owner) {
      return `client id "${client.id}" is connected with another identity (${identityName(live.identity)}); not taken over`
    }
    const recorded = this.#sessionOwners.ownerOf(client.id)
    if (recorded !== undefined && recorded !== owner) {
      if (!client.clean) return `the persistent session of client id "${client.id}" belongs to another identity; not resumed`
      this.#sessionOwners.release(client.id)
    }
    if (!client.clean) this.#sessionOwners.claim(client.id, owner)
    return undefined
  }

  #authorizePublish (client: Client | null, packet: PublishPacket, done: (error?: Error | null) => void): void {
    const session = client && this.#session(client)
    if (!session) return done(new Error('no session'))
    // aedes hands a last will to this hook from client.close(), after the
    // connection is gone [MQTT-3.1.2-8].
    if (client.closed && packet === (client as Client & { will?: unknown }).will) {
      const withheld = this.#willWithheldBecause(session)
      if (withheld) {
        this.#logger.info({ client: identityName(session.identity), why: withheld }, 'last will not published')
        return done(new Error(`last will withheld: ${withheld}`))
      }
    }
    const decision = canPublish(session.identity, packet.topic)
    if (!decision.allowed) {
      this.#report('acl-denied', { ...identityFields(session.identity), remoteAddress: session.remoteAddress, reason: decision.reason, topic: printable(packet.topic, 200) })
      // [MQTT-3.3.5-2] 3.1.1 cannot refuse a PUBLISH: the server acknowledges
      // it or closes the connection. PlaceGuard closes (as AWS IoT Core does),
      // so a compromised device's attempt is both blocked and visible.
      this.#endedByBroker.set(session, 'ACL violation')
      return done(new Error(decision.reason))
    }
    if (packet.retain) this.#limitRetain(session, packet)
    if (packet.topic === QUARANTINE_CONTROL_TOPIC) {
      // Acted on here, before PUBACK; never kept as a retained message.
      packet.retain = false
      this.#quarantine.onControl(identityName(session.identity), packet.payload as Buffer)
      return done(null)
    }
    if (!session.throttle) return done(null)
    const now = this.#clock.now()
    // Holding the callback holds aedes' read loop for this client (see
    // read-backpressure.ts): TCP back-pressure slows the device down.
    const verdict = session.throttle.admit(() => done(null))
    if (verdict === 'now') return
    const { publishRatePerSec: rate, publishBurst: burst, maxThrottleMs } = this.limits
    if (verdict === 'overflow') {
      this.#report('rate-limited', {
        ...identityFields(session.identity), remoteAddress: session.remoteAddress,
        reason: `publishing so far beyond ${rate}/s that a message would wait over ${maxThrottleMs} ms; disconnected`,
        details: { ratePerSec: rate, burst, disconnected: true },
      })
      this.#endedByBroker.set(session, 'rate limit')
      return done(new Error('publish backlog over the rate limit'))
    }
    if (now - session.rateLimitedAt >= RATE_EVENT_EVERY_MS) {
      session.rateLimitedAt = now
      this.#report('rate-limited', {
        ...identityFields(session.identity), remoteAddress: session.remoteAddress,
        reason: `publishing faster than ${rate}/s (burst ${burst}); reads slowed`,
        details: { ratePerSec: rate, burst },
      })
    }
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
    if (this.#gate.isRevoked(session.serial)) return 'certificate revoked'
    if (session.identity.role === 'device' && this.#quarantine.holds(session.identity.deviceId)) return 'device quarantined'
    if (session.notAfter <= this.#clock.now()) return 'certificate expired'
    return undefined
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

  /** A protocol error, not a security decision: the will still goes out, as §3.1.2.5 of MQTT 3.1.1 lists. */
  #onBadString (session: Session, packetType: string, escaped: string, defect: string): void {
    this.#report('protocol-violation', {
      ...identityFields(session.identity), remoteAddress: session.remoteAddress,
      reason: `${packetType.toUpperCase()} carries a string with ${defect}: "${escaped}"; connection closed`,
      code: 'MALFORMED_UTF8',
    })
  }

  #authorizeSubscribe (client: Client | null, subscription: Subscription, done: (error: Error | null, subscription?: Subscription | null) => void): void {
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
          ...identityFields(session.identity), remoteAddress: session.remoteAddress, topic: printable(subscription.topic, 200),
          reason: `more than ${MAX_SUBSCRIBE_DENIALS} refused subscriptions in one session; connection closed`,
          details: { sinceLastReport: denials.unreported, disconnected: true },
        })
      }
      return done(new Error('too many refused subscriptions'))
    }
    if (now - denials.reportedAt >= SUBSCRIBE_DENIAL_EVENT_EVERY_MS) {
      this.#report('acl-denied', {
        ...identityFields(session.identity), remoteAddress: session.remoteAddress, reason: decision.reason, topic: printable(subscription.topic, 200),
        details: { sinceLastReport: denials.unreported },
      })
      denials.reportedAt = now
      denials.unreported = 0
    }
    // A null subscription answers 0x80 (failure) in the SUBACK [MQTT-3.9.3].
    done(null, null)
  }

  #onClientReady (client: Client): void {
    const session = this.#session(client)
    if (!session) return
    if (session.identity.role === 'collector') this.#collectorSessions++
    this.#gate.sessionConnected(client.conn as TLSSocket)
    this.#report('connect', { ...identityFields(session.identity), remoteAddress: session.remoteAddress, serial: session.serial, reason: 'connected' })
  }

  #onClientDisconnect (client: Client): void {
    const session = this.#session(client)
    if (!session) return
    if (session.identity.role === 'collector') this.#collectorSessions--
    this.#report('disconnect', {
      ...identityFields(session.identity), remoteAddress: session.remoteAddress, reason: 'disconnected',
      details: { sessionMs: this.#clock.now() - session.connectedAt },
    })
  }
}
