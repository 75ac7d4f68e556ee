/**
 * The aedes hooks on a session's way in and out: the CONNECT (strings,
 * client id, quarantine, who owns a persistent session) and the session's
 * arrival and departure. Authentication in mosquitto's terms; what a
 * session may then publish and subscribe is authorize-hooks.ts. aedes calls
 * these; they are given a small context, never the broker.
 */
import type { AuthenticateError, Client } from 'aedes'
import type { TLSSocket } from 'node:tls'
import type { Clock } from '../shared/clock.ts'
import { isReservedId, printable } from '../shared/ids.ts'
import { type Identity, identityName, identityUri, type SupplierGrant } from '../pki/index.ts'
import { openWindow } from '../shared/access-windows.ts'
import type { BrokerLimits } from './config.ts'
import { identityFields, type ReportEvent } from './event-reporter.ts'
import type { QuarantineGate } from './quarantine-gate.ts'
import type { Session } from './session.ts'
import type { SessionOwners } from './session-owners.ts'
import type { TlsGate } from './tls-gate.ts'
import { installStringValidity } from './topic-validity.ts'
import type { BrokerClusterLink, ClusterSessionRecord } from './cluster-link.ts'

export interface ConnectHooksContext {
  limits: Readonly<Pick<BrokerLimits, 'maxCollectorSessions' | 'maxConnections'>>
  clock: Clock
  report: ReportEvent
  /** The verified session behind an aedes client. */
  sessionOf: (client: Client) => Session | undefined
  /** aedes' live client holding this client id, if any. */
  clientById: (clientId: string) => Client | undefined
  tls: Pick<TlsGate, 'sessionConnected'>
  quarantine: Pick<QuarantineGate, 'refusal'>
  sessionOwners: Pick<SessionOwners, 'ownerOf' | 'claim' | 'release'>
  /** Authenticated sessions on this node. */
  liveSessions: () => number
  /** In a cluster: the limits count every node's sessions, and a session held on another node is a takeover. */
  cluster?: Pick<BrokerClusterLink, 'nodeId' | 'claimSession' | 'releaseSession' | 'othersSessions'> | undefined
  /** A supplier's grant from the inventory (issue 17); undefined refuses it. */
  supplierGrant: (supplierId: string) => SupplierGrant | undefined
}

export class ConnectHooks {
  readonly #limits: ConnectHooksContext['limits']
  readonly #clock: Clock
  readonly #report: ReportEvent
  readonly #session: ConnectHooksContext['sessionOf']
  readonly #clientById: ConnectHooksContext['clientById']
  readonly #tls: ConnectHooksContext['tls']
  readonly #quarantine: ConnectHooksContext['quarantine']
  readonly #sessionOwners: ConnectHooksContext['sessionOwners']
  readonly #liveSessions: ConnectHooksContext['liveSessions']
  readonly #cluster: ConnectHooksContext['cluster']
  readonly #supplierGrant: ConnectHooksContext['supplierGrant']
  /** What this node recorded in the cluster for each session, to release exactly that. */
  readonly #clusterRecords = new WeakMap<Session, ClusterSessionRecord>()
  #collectorSessions = 0

  constructor (context: ConnectHooksContext) {
    this.#limits = context.limits
    this.#clock = context.clock
    this.#report = context.report
    this.#session = context.sessionOf
    this.#clientById = context.clientById
    this.#tls = context.tls
    this.#quarantine = context.quarantine
    this.#sessionOwners = context.sessionOwners
    this.#liveSessions = context.liveSessions
    this.#cluster = context.cluster
    this.#supplierGrant = context.supplierGrant
  }

  preConnect (client: Client, packet: { clientId: string, will?: { topic: string } | null }, done: (error: Error | null, ok: boolean) => void): void {
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
    // [MQTT-3.1.3-6] a zero-length client id is assigned by the server: here, the device's (or integration's) id.
    const ownId = clientIdOf(session.identity)
    if (packet.clientId === '' && ownId !== undefined) packet.clientId = ownId
    done(null, true)
  }

  authenticate (client: Client, done: (error: AuthenticateError | null, ok: boolean | null) => void): void {
    const session = this.#session(client)!
    const { identity } = session
    const refuse = (reason: string, returnCode: number, code: string): void => {
      this.#report('auth-failed', { ...identityFields(identity), remoteAddress: session.remoteAddress, serial: session.serial, reason, code })
      done(Object.assign(new Error(reason), { returnCode }) as AuthenticateError, false)
    }
    const ownId = clientIdOf(identity)
    if (ownId !== undefined) {
      // An integration is held to a device's rules: its certificate's id is its client id.
      const what = identity.role === 'device' ? 'device' : identity.role
      if (client.id !== ownId) {
        return refuse(`client id "${printable(client.id, 64)}" is not the certificate's ${what} id`, 2, 'CLIENT_ID_MISMATCH')
      }
      // A certificate signed before the PKI refused reserved ids (or by a
      // careless CA) must not pass for the collector or the operator CLI:
      // with their client id it would resume their sessions (STRIDE: Spoofing).
      if (isReservedId(ownId)) {
        return refuse(`${what} id "${ownId}" is reserved for PlaceGuard's own clients`, 5, 'RESERVED_ID')
      }
      const existing = this.#clientById(client.id)
      if (existing && existing !== client) {
        const other = this.#session(existing)
        // [MQTT-3.1.4-2] the new connection takes over; a clone shows as repeated takeovers.
        this.#report('duplicate-identity', {
          ...identityFields(identity, { otherRemoteAddress: other?.remoteAddress ?? 'unknown', sameCertificate: other?.serial === session.serial }),
          remoteAddress: session.remoteAddress, serial: session.serial,
          reason: 'a second connection presented the same identity; the earlier one is disconnected',
        })
      }
      const quarantined = this.#quarantine.refusal(ownId)
      if (quarantined) {
        // CONNACK 5 (not authorized): the device is known and valid, but not welcome for now.
        // A device that keeps retrying is reported once a minute, not at every attempt.
        if (!quarantined.report) return done(Object.assign(new Error(quarantined.reason), { returnCode: 5 }) as AuthenticateError, false)
        return refuse(quarantined.reason, 5, 'QUARANTINED')
      }
      if (identity.role === 'supplier') {
        // A supplier's access is granted by the inventory and opened by its
        // windows (issue 17, policy supplier-access-outside-window): a valid
        // certificate alone is not enough (STRIDE: Elevation of privilege).
        const grant = this.#supplierGrant(identity.supplierId)
        if (!grant) return refuse(`supplier "${identity.supplierId}" has no grant in the inventory`, 5, 'SUPPLIER_NO_GRANT')
        if (!openWindow(grant.windows, this.#clock.now())) {
          const reason = `supplier "${identity.supplierId}" connected outside its access windows`
          this.#report('supplier-outside-window', {
            ...identityFields(identity, { phase: 'connect' }), remoteAddress: session.remoteAddress, serial: session.serial, reason,
          })
          // CONNACK 5 (not authorized) [MQTT-3.2.2-5]: known and valid, but not now.
          return done(Object.assign(new Error(reason), { returnCode: 5 }) as AuthenticateError, false)
        }
      }
    } else {
      if (!/^collector(-[a-z0-9-]{1,54})?$/.test(client.id)) {
        return refuse(`client id "${printable(client.id, 64)}" is not a collector client id (collector or collector-<name>)`, 2, 'CLIENT_ID_MISMATCH')
      }
      const collectors = this.#collectorSessions + (this.#cluster?.othersSessions('collector') ?? 0)
      if (collectors >= this.#limits.maxCollectorSessions && !this.#clientById(client.id)) {
        return refuse(`collector session limit (${this.#limits.maxCollectorSessions}) reached${this.#cluster ? ' across the cluster' : ''}`, 3, 'SESSION_LIMIT')
      }
    }
    if (this.#cluster && !this.#clientById(client.id)) {
      // This node's own total is the TLS gate's; across the cluster it is counted here, on the nodes' heartbeats.
      const sessions = this.#liveSessions() + this.#cluster.othersSessions()
      if (sessions > this.#limits.maxConnections) {
        return refuse(`connection limit (${this.#limits.maxConnections}) reached across the cluster`, 3, 'CLUSTER_LIMIT')
      }
    }
    const ownership = this.#claimSession(client, identity)
    if (ownership) return refuse(ownership, 5, 'SESSION_OWNER_MISMATCH')
    if (!this.#cluster || identity.role === 'collector') return done(null, true)
    // In a cluster the same identity may be live on another node: aedes closes
    // that session through the shared emitter; here the takeover is reported with both nodes.
    const cluster = this.#cluster
    const record: ClusterSessionRecord = { serial: session.serial, remoteAddress: session.remoteAddress, connectedAt: session.connectedAt }
    this.#clusterRecords.set(session, record)
    cluster.claimSession(client.id, record).then((previous) => {
      if (previous && previous.node !== cluster.nodeId) {
        this.#report('duplicate-identity', {
          ...identityFields(identity, { node: cluster.nodeId, otherNode: previous.node, otherRemoteAddress: previous.remoteAddress, sameCertificate: previous.serial === session.serial }),
          remoteAddress: session.remoteAddress, serial: session.serial,
          reason: `a second connection presented the same identity on node ${cluster.nodeId} while node ${previous.node} held it; the earlier one is disconnected`,
        })
      }
    }, () => {
      // Redis unreachable: the identity is the certificate's all the same; only the cross-node report is missed.
    }).finally(() => done(null, true))
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
    const existing = this.#clientById(client.id)
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

  /** A protocol error, not a security decision: the will still goes out, as §3.1.2.5 of MQTT 3.1.1 lists. */
  #onBadString (session: Session, packetType: string, escaped: string, defect: string): void {
    this.#report('protocol-violation', {
      ...identityFields(session.identity), remoteAddress: session.remoteAddress,
      reason: `${packetType.toUpperCase()} carries a string with ${defect}: "${escaped}"; connection closed`,
      code: 'MALFORMED_UTF8',
    })
  }

  onClientReady (client: Client): void {
    const session = this.#session(client)
    if (!session) return
    if (session.identity.role === 'collector') this.#collectorSessions++
    this.#tls.sessionConnected(client.conn as TLSSocket)
    this.#report('connect', { ...identityFields(session.identity), remoteAddress: session.remoteAddress, serial: session.serial, reason: 'connected' })
  }

  onClientDisconnect (client: Client): void {
    const session = this.#session(client)
    if (!session) return
    if (session.identity.role === 'collector') this.#collectorSessions--
    const record = this.#clusterRecords.get(session)
    if (record) this.#cluster?.releaseSession(client.id, record)
    this.#report('disconnect', {
      ...identityFields(session.identity, { sessionMs: this.#clock.now() - session.connectedAt }), remoteAddress: session.remoteAddress, reason: 'disconnected',
    })
  }
}

/** The client id a certificate binds: a device's or an integration's id; undefined for the collector (it has several). */
function clientIdOf (identity: Identity): string | undefined {
  if (identity.role === 'device') return identity.deviceId
  if (identity.role === 'integration') return identity.integrationId
  if (identity.role === 'supplier') return identity.supplierId
  return undefined
}
