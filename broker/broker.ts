/**
 * The PlaceGuard broker: aedes behind Node's TLS with the fleet CA.
 *
 * Trust flows one way: a TLS handshake verified against the fleet CA and CRL
 * yields an Identity read from the certificate; every later decision (client
 * id, topics, rate, revocation) is taken against that identity, never against
 * what the MQTT packets claim.
 *
 * This file assembles the parts and holds the sessions: tls-gate.ts (TCP
 * admission, the handshake's deadline, the CRL, certificates of live
 * sessions), handshake-verdict.ts (the identity a handshake yields),
 * connect-hooks.ts and authorize-hooks.ts (the aedes hooks),
 * quarantine-gate.ts, event-reporter.ts (security events).
 */
import { EventEmitter } from 'node:events'
import type { AddressInfo } from 'node:net'
import type { TLSSocket } from 'node:tls'
// Before aedes, which loads mqtt-packet: see quiet-debug.ts.
import './quiet-debug.ts'
import { Aedes, type AedesOptions, type Client } from 'aedes'
import { AckAfterStore } from './ack-after-store.ts'
import { type Clock, systemClock } from '../shared/clock.ts'
import type { Logger } from '../shared/logger.ts'
import type { SupplierGrant } from '../pki/index.ts'
import { installPacketSizeLimit } from './packet-size-limit.ts'
import { ProtocolViolations } from './protocol-violations.ts'
import { printable } from '../shared/ids.ts'
import { AuthorizeHooks } from './authorize-hooks.ts'
import { ConnectHooks } from './connect-hooks.ts'
import { type BrokerLimits, DEFAULT_BROKER_LIMITS } from './config.ts'
import { createMqEmitter } from './mq-fast-queue.ts'
import { installReadBackpressure } from './read-backpressure.ts'
import type { SecurityEvent } from '../shared/security-events.ts'
import { createEventReporter, identityFields, type ReportEvent } from './event-reporter.ts'
import { judgeHandshake } from './handshake-verdict.ts'
import { aedesPatchesApplied } from './aedes-patches.ts'
import { createSqlitePersistence } from './sqlite-persistence.ts'
import type { QuarantineEntry } from './quarantine.ts'
import { QuarantineGate, type QuarantineRequest } from './quarantine-gate.ts'
import { type Session, type SessionInfo, newSession, sessionInfo } from './session.ts'
import { SessionOwners } from './session-owners.ts'
import { TlsGate } from './tls-gate.ts'
import type { BrokerClusterLink } from './cluster-link.ts'
import type { QuarantineCommand } from '../shared/control.ts'

export interface BrokerTlsFiles {
  caCert: string
  serverCert: string
  serverKey: string
  crl: string
}

export interface BrokerOptions {
  tls: BrokerTlsFiles
  host?: string
  port: number
  limits?: Partial<BrokerLimits>
  logger: Logger
  clock?: Clock
  /**
   * aedes persistence and mqemitter, e.g. the Redis pair for a cluster;
   * without a persistence, PlaceGuard's SQLite store in memory. Both become
   * the broker's to end: aedes closes the mqemitter, and the
   * broker destroys the persistence once aedes has closed (`close()`
   * resolves after it).
   */
  aedes?: Pick<AedesOptions, 'persistence' | 'mq' | 'id'>
  /** Where quarantines are kept across restarts (e.g. `<data-dir>/quarantine.json`); in memory without it. */
  quarantineFile?: string
  /**
   * A supplier's grant (kinds, sites, access windows) from the inventory,
   * asked at its connect and at each command (issue 17). Without it no
   * supplier gets in: fail closed.
   */
  supplierGrant?: (supplierId: string) => SupplierGrant | undefined
  /** Where the owner of each persistent session is kept across restarts (e.g. `<data-dir>/session-owners.jsonl`); in memory without it. */
  sessionOwnersFile?: string
  /** A node of a cluster (app/ builds the link on Redis); absent: a single broker. */
  cluster?: BrokerClusterLink
}

const aedesByBroker = new WeakMap<PlaceGuardBroker, Aedes>()

/**
 * Test seam: the aedes instance inside a broker, for tests that look at
 * what aedes keeps (its persistence, clients, queue). broker/index.ts does
 * not export it, so no other room can reach aedes (eslint.config.js's
 * doors); production code goes through PlaceGuardBroker's methods.
 */
export function aedesOf (broker: PlaceGuardBroker): Aedes {
  return aedesByBroker.get(broker)!
}

export class PlaceGuardBroker extends EventEmitter<{ 'security-event': [SecurityEvent] }> {
  readonly limits: Readonly<BrokerLimits>
  readonly #aedes: Aedes
  /** The given persistence's destroy, begun when aedes has closed; close() awaits it. */
  #persistenceDestroyed: Promise<void> | undefined
  readonly #logger: Logger
  readonly #clock: Clock
  readonly #gate: TlsGate
  readonly #isRevoked = (serial: string): boolean => this.#gate.isRevoked(serial)
  /** Lookup by socket outlives the socket's close, so a last will is still judged by its identity. */
  readonly #sessions = new WeakMap<TLSSocket, Session>()
  /** Open connections, for quarantine and the connection count (the TLS gate ends sessions on expiry and revocation). */
  readonly #live = new Map<TLSSocket, Session>()
  readonly #report: ReportEvent
  readonly #quarantine: QuarantineGate
  readonly #sessionOwners: SessionOwners
  readonly #connectHooks: ConnectHooks
  readonly #authorizeHooks: AuthorizeHooks
  /** Packets that break MQTT, one event per connection (protocol-violations.ts). */
  readonly #violations = new ProtocolViolations((client, code, reason) => {
    const session = this.#session(client)
    if (!session) return
    this.#report('protocol-violation', { ...identityFields(session.identity), remoteAddress: session.remoteAddress, reason: printable(reason, 200), code })
  })

  constructor (options: BrokerOptions) {
    super()
    this.#logger = options.logger
    this.#clock = options.clock ?? systemClock
    this.limits = Object.freeze({ ...DEFAULT_BROKER_LIMITS, ...options.limits })
    this.#report = createEventReporter({
      clock: this.#clock, logger: this.#logger,
      deliver: (event) => this.emit('security-event', event),
      publisher: () => this.#aedes,
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
          const { identity } = session
          // Ids are one namespace (pki): a quarantined id may be an integration's, which cuts off its fleet's uplinks.
          const id = identity.role === 'device' ? identity.deviceId : identity.role === 'integration' ? identity.integrationId
            : identity.role === 'supplier' ? identity.supplierId : undefined
          if (id !== deviceId) continue
          socket.destroy()
          dropped++
        }
        return dropped
      },
      onCommand: options.cluster && ((command) => options.cluster!.shareQuarantine(command)),
    })
    this.#sessionOwners = new SessionOwners(options.sessionOwnersFile, (error) => {
      this.#logger.error({ file: options.sessionOwnersFile, err: error.message }, 'session owners not saved: each persistent session stays bound to its identity while the broker runs, but a restart now would forget the bindings since the last save')
    })
    const sessionOf = (client: Client): Session | undefined => this.#session(client)
    this.#connectHooks = new ConnectHooks({
      limits: this.limits, clock: this.#clock, report: this.#report, sessionOf,
      clientById: (clientId) => this.#clients[clientId],
      tls: this.#gate, quarantine: this.#quarantine, sessionOwners: this.#sessionOwners,
      liveSessions: () => this.#live.size, cluster: options.cluster, supplierGrant: options.supplierGrant ?? (() => undefined),
    })
    this.#authorizeHooks = new AuthorizeHooks({
      limits: this.limits, clock: this.#clock, logger: this.#logger, report: this.#report, sessionOf,
      tls: this.#gate, quarantine: this.#quarantine, cluster: options.cluster, supplierGrant: options.supplierGrant ?? (() => undefined),
      // PlaceGuard's SQLite store says when it fails (a full disk); another persistence (Redis) does not.
      storing: () => (persistence as { whenStoring?: () => Promise<void> | undefined }).whenStoring?.(),
    })
    // Without one given, the same SQL store in memory, not aedes' own memory
    // persistence: that one numbers packet ids blind to the queue (see
    // aedes-patches.ts, `unused-packet-id`), and a backlog resent while live
    // messages flow makes it drop the connection ('no such packet').
    const persistence = options.aedes?.persistence ?? createSqlitePersistence({ path: ':memory:', logger: options.logger, clock: options.clock })
    this.#aedes = new Aedes({
      id: options.aedes?.id,
      persistence: persistence as AedesOptions['persistence'],
      // mqemitter's queue shifts an Array (O(n)); under a fast TLS publisher
      // that made aedes quadratic. See broker/mq-fast-queue.ts.
      mq: options.aedes?.mq ?? createMqEmitter({ concurrency: 100 }),
      connectTimeout: this.limits.connectTimeoutMs,
      // Client ids are device ids (up to 64 characters), not MQTT 3.1's 23.
      maxClientsIdLength: 64,
      preConnect: (client, packet, done) => this.#connectHooks.preConnect(client, packet, done),
      authenticate: (client, _username, _password, done) => this.#connectHooks.authenticate(client, done),
      // ackAfterStore is set just below, before aedes reads a packet.
      authorizePublish: (client, packet, done) => this.#authorizeHooks.authorizePublish(client, packet, ackAfterStore.wrap(client, packet, done)),
      authorizeSubscribe: (client, subscription, done) => this.#authorizeHooks.authorizeSubscribe(client, subscription, done),
    })
    // aedes acknowledges QoS 1 before it stores; see broker/ack-after-store.ts.
    const ackAfterStore = new AckAfterStore(this.#aedes)
    aedesByBroker.set(this, this.#aedes)
    this.#aedes.on('clientReady', (client) => this.#connectHooks.onClientReady(client))
    this.#aedes.on('clientDisconnect', (client) => this.#connectHooks.onClientDisconnect(client))
    this.#aedes.on('clientError', (client, error) => {
      this.#violations.onAedesError(client, error)
      this.#logger.debug({ client: client.id, err: error.message }, 'client error')
    })
    // The same before CONNECT (no client id yet): a packet before it, for one.
    this.#aedes.on('connectionError', (client, error) => {
      this.#violations.onAedesError(client, error)
      // aedes refuses a CONNECT of a protocol level other than 3.1 and 3.1.1 (an MQTT 5 client) with CONNACK 1, in silence.
      const session = (error as { errorCode?: number }).errorCode === 1 ? this.#session(client) : undefined
      if (session) {
        this.#report('auth-failed', { ...identityFields(session.identity), remoteAddress: session.remoteAddress, serial: session.serial,
          reason: 'CONNECT of an MQTT version this broker does not speak (it speaks 3.1.1 and 3.1; MQTT 5 is not served): CONNACK 1', code: 'UNSUPPORTED_PROTOCOL_VERSION' })
      }
    })
    // Not before 'closed': aedes writes to it while closing its clients (wills, clean sessions).
    this.#aedes.once('closed', () => {
      this.#persistenceDestroyed = (persistence as { destroy: () => Promise<void> }).destroy()
      this.#persistenceDestroyed.catch(() => {}) // not unhandled while aedes finishes closing; close() rethrows
    })
  }

  async listen (): Promise<AddressInfo> {
    await this.#gate.loadCrl(true)
    await this.#aedes.listen() // sets up persistence; aedes ignores clients until then
    const address = await this.#gate.listen()
    this.#quarantine.start()
    this.#logger.info({ port: address.port, host: address.address, aedesPatches: aedesPatchesApplied() }, 'broker listening (mTLS)')
    return address
  }

  /** Graceful stop: no new connections, every client disconnected, then closed, and the given persistence destroyed. */
  async close (): Promise<void> {
    this.#quarantine.stop()
    await this.#gate.close()
    await new Promise<void>((resolve) => this.#aedes.close(() => resolve()))
    await this.#persistenceDestroyed
  }

  get connectionCount (): number {
    return this.#live.size
  }

  /** Verified connections by role (`device`, `collector`): a cluster node's heartbeat carries them. */
  connectionsByRole (): Record<string, number> {
    const counts: Record<string, number> = {}
    for (const session of this.#live.values()) counts[session.identity.role] = (counts[session.identity.role] ?? 0) + 1
    return counts
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
    return (this.#aedes as unknown as { clients: Record<string, Client | undefined> }).clients
  }

  /** Re-reads the CRL now (also done by polling the file). */
  async reloadCrl (): Promise<void> {
    await this.#gate.loadCrl(false)
  }

  /** Retained PUBLISHes from devices delivered without being stored (retained-guard.ts), since start. */
  get retainedRefused (): number {
    return this.#authorizeHooks.retainedRefused
  }

  /** Retained PUBLISHes from LoRaWAN integrations delivered unretained, since start (authorize-hooks.ts, #readdress). */
  get integrationRetainStripped (): number {
    return this.#authorizeHooks.integrationRetainStripped
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

  /** Acts on a quarantine or lift another cluster node passed on (not passed on again). */
  applyQuarantineCommand (command: QuarantineCommand): void {
    this.#quarantine.apply(command)
  }

  /** Quarantines in force. */
  quarantined (): QuarantineEntry[] {
    return this.#quarantine.inForce()
  }

  // --- a verified connection, handed to aedes -----------------------------------

  #onSecureConnection (socket: TLSSocket): void {
    socket.on('error', () => {}) // reported through aedes or by the close below
    const verdict = judgeHandshake(socket, { ca: this.#gate.ca, isRevoked: this.#isRevoked, clock: this.#clock, remoteAddress: this.#gate.remoteAddressOf(socket) })
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
    const client = this.#aedes.handle(socket) as unknown as Client
    installReadBackpressure(client)
    installPacketSizeLimit(client, this.limits.maxPacketBytes, (size) => {
      this.#report('packet-too-large', { ...identityFields(identity, { bytes: size }), remoteAddress, reason: `packet of ${size} bytes exceeds the ${this.limits.maxPacketBytes}-byte limit; connection closed` })
    })
    this.#violations.install(client)
  }
}
