/**
 * The broker's TLS gate: everything between a TCP accept and a session with
 * a verified identity, and the checks that keep a session's certificate
 * good for as long as the session lives.
 *
 * A plain TCP server accepts and counts; only a connection it admits is
 * handed to the TLS server. Before its handshake completes a peer is
 * anonymous, so it may hold neither more than a few slots per source
 * address nor the reserve kept for authenticated sessions, and its handshake
 * has a deadline that trickling bytes cannot push back (STRIDE D). Only the
 * broker's own saturation stretches that deadline, and only so far: a
 * handshake waiting in a reconnect storm's queue is not a stalling peer.
 *
 * A device that reconnects with a TLS session ticket resumes without the
 * certificate signature and key exchange of a full handshake, which is what
 * lets a whole fleet come back at once after a broker restart. The ticket
 * keys are derived from a secret file beside the server key, so tickets
 * survive a restart, and nodes given the same file resume each other's
 * sessions (docs/broker.md, "Session resumption").
 */
import { createHash, hkdfSync, randomBytes, X509Certificate } from 'node:crypto'
import { readFileSync, statSync, unwatchFile, watchFile } from 'node:fs'
import { type AddressInfo, createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net'
import { dirname, join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls'
import type { Clock } from '../shared/clock.ts'
import { addressKey } from '../shared/address-key.ts'
import { PlaceGuardError } from '../shared/errors.ts'
import type { Logger } from '../shared/logger.ts'
import { type CrlSummary, readCrl, readOrCreateTicketSecret, TICKET_SECRET_FILE } from '../pki/index.ts'
import type { BrokerTlsFiles } from './broker.ts'
import type { BrokerLimits } from './config.ts'
import { HANDSHAKE_CODES, type SecurityEvent, type SecurityEventType } from '../shared/security-events.ts'
import { LoopLoad } from './loop-load.ts'
import { describeHandshakeError } from './tls-reasons.ts'

export type GateLimits = Pick<BrokerLimits, 'maxConnections' | 'reservedConnections' | 'maxConnectionsPerAddress' |
'maxHandshakesPerAddress' | 'handshakeTimeoutMs' | 'crlPollMs' | 'tlsTicketLifetimeSec'>

type EventFields = Omit<SecurityEvent, 'type' | 'at'>

export interface TlsGateOptions {
  tls: BrokerTlsFiles
  host?: string
  port: number
  limits: GateLimits
  clock: Clock
  logger: Logger
  emit: (type: SecurityEventType, fields: EventFields) => void
  /** A completed handshake; the broker judges the certificate and calls `admitSession` or destroys the socket. */
  onSecureConnection: (socket: TLSSocket) => void
}

/** What the gate keeps about an authenticated session to end it when its certificate stops being good. */
export interface GateSession {
  serial: string
  /** The certificate's notAfter, ms since the epoch. */
  notAfter: number
  /** Identity and address fields for the session's events. */
  fields: Omit<EventFields, 'reason'>
}

interface RefusalState {
  reportedAt: number
  unreported: number
  latest: { type: SecurityEventType, fields: EventFields } | undefined
}

interface Connection {
  raw: Socket
  /** `address:port` of the peer, read once at accept (each read of a socket's address is a system call, and a destroyed socket no longer knows it). */
  remote: string
  /** Per-address key: the IPv4 address, or the IPv6 /64. */
  address: string
  handshaking: boolean
  /** When it was accepted, `performance.now()`. */
  acceptedAt: number
  /** Kept past its deadline because the broker was saturated. */
  stretched: boolean
  /** Counted against its address until its MQTT CONNECT is accepted (see `sessionConnected`). */
  anonymous: boolean
  deadline: NodeJS.Timeout | undefined
}

/** How often live sessions are checked against their certificate's notAfter and the CRL. */
const SESSION_SWEEP_MS = 1_000
/** One event per kind of refusal in this period, carrying how many were refused since the last one. */
const REFUSAL_EVENT_EVERY_MS = 10_000
/** Refusal kinds tracked at once; beyond it, new kinds share one report (the map stays bounded). */
const MAX_REFUSAL_KINDS = 1_024
/**
 * The event loop busy at least this share of the last second: the broker,
 * not the peer, is what a handshake is waiting for.
 */
const SATURATED_UTILIZATION = 0.9
/** While the broker is saturated, a handshake whose peer has sent bytes may run to this many times `handshakeTimeoutMs`. */
const SATURATED_DEADLINE_FACTOR = 3
/** How often a handshake past its deadline, kept for a saturated broker, is looked at again. */
const DEADLINE_RECHECK_MS = 1_000
/**
 * Ticket keys change at least this often. Node's tls.Server holds one
 * ticket key, not a current and a previous one, so a ticket issued under
 * the old key costs its device one full handshake after the change.
 */
const TICKET_KEY_PERIOD_MS = 12 * 3_600_000

export class TlsGate {
  readonly ca: X509Certificate
  readonly #options: TlsGateOptions
  readonly #limits: GateLimits
  readonly #caPem: string
  readonly #tls: TlsServer
  readonly #tcp: TcpServer
  /** Open TCP connections, by their socket. */
  readonly #connections = new Map<Socket, Connection>()
  /** The peer's `address:port` per TCP socket, as read at accept; kept past the record, for a handshake failed at close. */
  readonly #remotes = new WeakMap<Socket, string>()
  /** TCP sockets the gate destroyed itself (timed out, evicted, closing): already reported, or not the peer's doing. */
  readonly #dropped = new WeakSet<Socket>()
  /** Whether the TLS sockets' `_parent` has been seen missing (then connections are found by their 4-tuple). */
  #noParent = false
  /** Connections still in their handshake, oldest first. */
  readonly #handshakes = new Set<Connection>()
  /** Per source address: connections not yet CONNECTed, and handshakes; an entry lives only while one is counted. */
  readonly #perAddress = new Map<string, { open: number, handshaking: number }>()
  readonly #sessions = new Map<TLSSocket, GateSession>()
  /**
   * When each kind of refusal was last reported, how many since, and the
   * latest of them (reported with the count once the period is over);
   * at most MAX_REFUSAL_KINDS entries.
   */
  readonly #refusals = new Map<string, RefusalState>()
  readonly #loopLoad = new LoopLoad()
  /** Handshakes given more than `handshakeTimeoutMs` because the broker was saturated, since start (in the saturation warning). */
  #deadlinesStretched = 0
  #saturationLoggedAt = -Infinity
  #revoked = new Set<string>()
  #crl: { pem: string, summary: CrlSummary } | undefined
  #sweep: NodeJS.Timeout | undefined
  readonly #ticketSecret: Buffer
  readonly #ticketPeriodMs: number
  /** The key period in force: floor(clock / period). */
  #ticketEpoch: number
  #ticketRotation: NodeJS.Timeout | undefined
  /** Completed handshakes since start: a full one, or a session resumed from a ticket. */
  readonly #handshakeCounts = { full: 0, resumed: 0 }

  constructor (options: TlsGateOptions) {
    this.#options = options
    this.#limits = options.limits
    const { maxConnections, reservedConnections } = options.limits
    if (reservedConnections >= maxConnections) {
      throw new PlaceGuardError('PG_ERR_CONFIG_INVALID', `broker.reservedConnections (${reservedConnections}) must be below broker.maxConnections (${maxConnections})`, {
        field: 'broker.reservedConnections', hint: 'lower it, or raise broker.maxConnections; unauthenticated peers get maxConnections - reservedConnections',
      })
    }
    this.#caPem = readTls(options.tls.caCert, 'CA certificate')
    this.ca = new X509Certificate(this.#caPem)
    const secretFile = join(dirname(options.tls.serverKey), TICKET_SECRET_FILE)
    const secret = readOrCreateTicketSecret(secretFile)
    if (secret) {
      this.#ticketSecret = secret
      if ((statSync(secretFile).mode & 0o077) !== 0) {
        options.logger.warn({ file: secretFile }, 'the TLS ticket secret is readable by other users: whoever reads it can resume as any device; chmod 600 it')
      }
    } else {
      // A read-only pki/ (a container mounting the published PKI) and no
      // secret in it: tickets still work, but die with this process.
      this.#ticketSecret = randomBytes(32)
      options.logger.warn({ file: secretFile }, 'no TLS ticket secret and its directory is read-only: session tickets will not survive a restart nor resume on other nodes; provide the file (docs/broker.md, "Session resumption")')
    }
    this.#ticketPeriodMs = Math.max(TICKET_KEY_PERIOD_MS, options.limits.tlsTicketLifetimeSec * 1_000)
    this.#ticketEpoch = Math.floor(options.clock.now() / this.#ticketPeriodMs)
    this.#tls = createTlsServer({
      ...this.#secureContextOptions(),
      requestCert: true,
      // Verification runs in full, but its verdict is read by the broker
      // so that the refusal can name its reason and the device; no byte of an
      // unauthorized connection ever reaches aedes.
      rejectUnauthorized: false,
      minVersion: 'TLSv1.2',
      // Node's own timer is an idle timeout (it restarts at every byte); the
      // gate's deadline below is the one that holds. This one is only a
      // backstop, set past the gate's longest deadline: at equal times the two
      // raced, and a kept handshake was reported by either.
      handshakeTimeout: options.limits.handshakeTimeoutMs * (SATURATED_DEADLINE_FACTOR + 1),
    }, (socket) => {
      this.#handshakeCounts[socket.isSessionReused() ? 'resumed' : 'full']++
      options.onSecureConnection(socket)
    })
    // With a listener here Node no longer closes the socket itself: without
    // this destroy, a failed or timed-out handshake held its slot for ever.
    this.#tls.on('tlsClientError', (error: NodeJS.ErrnoException, socket: TLSSocket) => {
      socket.destroy()
      // A handshake the gate dropped fails here too (ECONNRESET): the gate
      // has said why, and it was not the peer that hung up.
      const parent = (socket as TLSSocket & { _parent?: unknown })._parent
      if (parent !== undefined && parent !== null && this.#dropped.has(parent as Socket)) return
      // Abandoned handshakes are counted apart: a stream of them must not
      // hold back the report of a handshake that failed for another reason.
      const { code, reason, cause } = describeHandshakeError(error)
      this.#report(code === HANDSHAKE_CODES.abandoned ? 'handshake-abandoned' : 'handshake-failed', 'tls-rejected', {
        remoteAddress: this.remoteAddressOf(socket), reason, code, ...(cause === undefined ? {} : { details: { cause } }),
      })
    })
    this.#tcp = createTcpServer((raw) => this.#onTcpConnection(raw))
  }

  async listen (): Promise<AddressInfo> {
    const { host, port } = this.#options
    await new Promise<void>((resolve, reject) => {
      this.#tcp.once('error', (error) => reject(new PlaceGuardError('PG_ERR_BROKER_LISTEN',
        `cannot listen on ${host ?? '0.0.0.0'}:${port}: ${error.message}`, { field: 'mqttPort', cause: error })))
      this.#tcp.listen(port, host, resolve)
    })
    watchFile(this.#options.tls.crl, { interval: this.#limits.crlPollMs, persistent: false }, () => { void this.loadCrl(false) })
    this.#sweep = setInterval(() => {
      this.#loopLoad.sample()
      this.#sweepSessions()
      this.#flushRefusals()
    }, SESSION_SWEEP_MS)
    this.#sweep.unref()
    this.#scheduleTicketRotation()
    return this.#tcp.address() as AddressInfo
  }

  /** No new connections; every open one, in handshake or not, destroyed. */
  async close (): Promise<void> {
    unwatchFile(this.#options.tls.crl)
    clearInterval(this.#sweep)
    clearTimeout(this.#ticketRotation)
    await new Promise<void>((resolve) => {
      this.#tcp.close(() => resolve())
      for (const connection of [...this.#connections.values()]) this.#drop(connection)
    })
  }

  /**
   * A certificate refused after its handshake (`tls-rejected`), reported at
   * most once per period per `who` (the identity it names, or the address):
   * each costs an attacker one handshake, not enough to flood the stream.
   */
  reportRejectedCertificate (who: string, fields: EventFields): void {
    this.#report(`certificate:${who}`, 'tls-rejected', fields)
  }

  /** Completed TLS handshakes since start, full and resumed (`isSessionReused()`), for tests and metrics. */
  get handshakeCounts (): Readonly<{ full: number, resumed: number }> {
    return { ...this.#handshakeCounts }
  }

  /** Handshakes in progress, for tests and metrics. */
  get handshakesInProgress (): number {
    return this.#handshakes.size
  }

  /** Whether a certificate serial is on the CRL in force (a resumed TLS session skips OpenSSL's check). */
  isRevoked (serial: string): boolean {
    return this.#revoked.has(serial)
  }

  /**
   * The broker accepted the certificate: the connection leaves the
   * handshake pool (it may now use the reserve) and is watched until its
   * certificate expires or is revoked. False if the gate does not know the
   * connection (then it must not be served).
   */
  admitSession (socket: TLSSocket, session: GateSession): boolean {
    const connection = this.#connectionOf(socket)
    if (!connection) return false
    this.#endHandshake(connection)
    this.#sessions.set(socket, session)
    socket.once('close', () => this.#sessions.delete(socket))
    return true
  }

  /**
   * The session's MQTT CONNECT was accepted: it stops counting against its
   * source address. The per-address cap is for peers that hold slots without
   * getting anywhere; devices behind one NAT or site gateway share an address,
   * and a cap on connected sessions would lock a whole site out.
   */
  sessionConnected (socket: TLSSocket): void {
    const connection = this.#connectionOf(socket)
    if (!connection?.anonymous) return
    connection.anonymous = false
    this.#release(connection.address, 'open')
  }

  /** `address:port` of the peer of a TLS socket this gate accepted, as read at accept. */
  remoteAddressOf (socket: TLSSocket): string {
    // By the TCP socket, not the record: a peer that hung up mid-handshake is reported at its close, when its
    // record is gone, and so is the address a closed socket could tell.
    const parent = (socket as TLSSocket & { _parent?: unknown })._parent
    if (parent !== undefined && parent !== null) return this.#remotes.get(parent as Socket) ?? addressOf(socket)
    return this.#connectionOf(socket)?.remote ?? addressOf(socket)
  }

  /**
   * The gate's record of a TLS socket. tls.Server wraps the TCP socket it is
   * handed in the TLSSocket and keeps it as `_parent`; reading that is a
   * property lookup where the 4-tuple costs two system calls per socket.
   * `_parent` is not documented, so if a Node ever drops it the gate finds
   * the connection by its 4-tuple instead, and says so once.
   */
  #connectionOf (socket: TLSSocket): Connection | undefined {
    const parent = (socket as TLSSocket & { _parent?: unknown })._parent
    if (parent !== undefined && parent !== null) return this.#connections.get(parent as Socket)
    if (!this.#noParent) {
      this.#noParent = true
      this.#options.logger.warn('TLS sockets carry no _parent in this Node: the TLS gate finds connections by their addresses (slower)')
    }
    const tuple = tupleOf(socket)
    for (const connection of this.#connections.values()) if (tupleOf(connection.raw) === tuple) return connection
    return undefined
  }

  // --- admission ---------------------------------------------------------------

  #onTcpConnection (raw: Socket): void {
    raw.on('error', () => {}) // a reset peer; its close does the accounting
    const address = addressKey(raw.remoteAddress)
    const refusal = this.#admit(address)
    if (refusal) {
      raw.destroy()
      this.#report(refusal.kind, 'connection-limit', { remoteAddress: addressOf(raw), reason: refusal.reason })
      return
    }
    const connection: Connection = { raw, remote: addressOf(raw), address, handshaking: true, acceptedAt: performance.now(), stretched: false, anonymous: true, deadline: undefined }
    this.#remotes.set(raw, connection.remote)
    const counts = this.#perAddress.get(address) ?? { open: 0, handshaking: 0 }
    counts.open++
    counts.handshaking++
    this.#perAddress.set(address, counts)
    this.#connections.set(raw, connection)
    this.#handshakes.add(connection)
    // Node's handshakeTimeout is an idle timeout: a ClientHello sent a byte
    // a second restarts it at every byte. This deadline does not move with
    // the peer's bytes.
    connection.deadline = setTimeout(() => this.#deadlinePassed(connection), this.#limits.handshakeTimeoutMs)
    raw.once('close', () => this.#forget(connection))
    this.#tls.emit('connection', raw)
  }

  /** Why a new connection from `address` is refused, or undefined to admit it (possibly by evicting the oldest handshake). */
  #admit (address: string): { kind: string, reason: string } | undefined {
    const { maxConnections, reservedConnections, maxConnectionsPerAddress, maxHandshakesPerAddress } = this.#limits
    const counts = this.#perAddress.get(address)
    if (counts && counts.open >= maxConnectionsPerAddress) {
      return { kind: 'per-address', reason: `connection refused: ${maxConnectionsPerAddress} connections from this address are not yet connected` }
    }
    if (counts && counts.handshaking >= maxHandshakesPerAddress) {
      return { kind: 'handshakes-per-address', reason: `connection refused: ${maxHandshakesPerAddress} TLS handshakes already in progress from this address` }
    }
    if (this.#handshakes.size < maxConnections - reservedConnections && this.#connections.size < maxConnections) return undefined
    // The unauthenticated pool (or the whole table) is full. A stalled
    // handshake gives way, a silent one first: a device finishes its
    // handshake in milliseconds, so only a peer that stalls loses its slot;
    // authenticated sessions are never evicted, and the reserve stays theirs.
    const victim = this.#handshakeToDrop()
    if (!victim) return { kind: 'total', reason: `connection refused: ${maxConnections} connections already open` }
    this.#report('handshake-evicted', 'connection-limit', {
      remoteAddress: victim.remote,
      reason: `TLS handshake dropped: ${maxConnections - reservedConnections} unauthenticated connections at once is the limit`,
    })
    this.#drop(victim)
    return undefined
  }

  /**
   * The oldest silent handshake (its peer has not sent a byte), or else the
   * oldest. Oldest alone let a flood that opens sockets faster than a loaded
   * broker finishes a handshake (64 addresses, ~3,500 a second) push a good
   * device's handshake to the front and evict it. Only silence counts, not
   * how many bytes: a peer could pad its ClientHello to look further along
   * than a device.
   */
  #handshakeToDrop (): Connection | undefined {
    let oldest: Connection | undefined
    for (const connection of this.#handshakes) {
      if (connection.raw.bytesRead === 0) return connection
      oldest ??= connection
    }
    return oldest
  }

  /**
   * A handshake's deadline has passed. The connection is dropped, unless
   * the broker is saturated and the peer has sent bytes: in a reconnect
   * storm thousands of handshakes queue behind the broker's own work, and
   * dropping those that waited longest throws away the work already done
   * on them and sends their devices back into the queue, each storm longer
   * than the last. Such a handshake is looked at again every second, up to
   * SATURATED_DEADLINE_FACTOR × the deadline. A silent peer is never kept,
   * and a trickling one only while the loop is saturated, which a trickle
   * does not do (STRIDE D).
   */
  #deadlinePassed (connection: Connection): void {
    if (!connection.handshaking || this.#connections.get(connection.raw) !== connection) return
    const { handshakeTimeoutMs } = this.#limits
    const waited = performance.now() - connection.acceptedAt
    const cap = handshakeTimeoutMs * SATURATED_DEADLINE_FACTOR
    if (connection.raw.bytesRead > 0 && waited < cap && this.#loopLoad.utilization >= SATURATED_UTILIZATION) {
      if (!connection.stretched) this.#deadlinesStretched++
      connection.stretched = true
      if (performance.now() - this.#saturationLoggedAt >= REFUSAL_EVENT_EVERY_MS) {
        this.#saturationLoggedAt = performance.now()
        this.#options.logger.warn({ handshakesInProgress: this.#handshakes.size, deadlinesStretched: this.#deadlinesStretched },
          'broker saturated: TLS handshakes waiting for it are kept past handshakeTimeoutMs (a reconnect storm, or more devices than this node can serve)')
      }
      connection.deadline = setTimeout(() => this.#deadlinePassed(connection), Math.min(DEADLINE_RECHECK_MS, cap - waited))
      return
    }
    this.#report('handshake-timeout', 'tls-rejected', {
      remoteAddress: connection.remote,
      reason: `TLS handshake not finished within ${handshakeTimeoutMs} ms${connection.stretched ? ` (kept ${Math.round(waited)} ms while the broker was saturated)` : ''}`,
      code: HANDSHAKE_CODES.timeout,
    })
    this.#drop(connection)
  }

  #endHandshake (connection: Connection): void {
    if (!connection.handshaking) return
    connection.handshaking = false
    clearTimeout(connection.deadline)
    this.#handshakes.delete(connection)
    this.#release(connection.address, 'handshaking')
  }

  #release (address: string, count: 'open' | 'handshaking'): void {
    const counts = this.#perAddress.get(address)
    if (!counts) return
    counts[count]--
    if (counts.open <= 0 && counts.handshaking <= 0) this.#perAddress.delete(address)
  }

  /** Destroys a connection and releases its slots now (its close event may come later). */
  #drop (connection: Connection): void {
    this.#dropped.add(connection.raw)
    this.#forget(connection)
    connection.raw.destroy()
  }

  #forget (connection: Connection): void {
    if (this.#connections.get(connection.raw) !== connection) return
    this.#connections.delete(connection.raw)
    this.#endHandshake(connection)
    if (connection.anonymous) {
      connection.anonymous = false
      this.#release(connection.address, 'open')
    }
  }

  /**
   * Refusals come from peers nobody has authenticated: reporting each would
   * let an attacker flood the event stream (STRIDE D), so each kind is
   * reported at most once per period, with the count since the last report.
   */
  #report (kind: string, type: SecurityEventType, fields: EventFields): void {
    const now = this.#options.clock.now()
    if (!this.#refusals.has(kind) && this.#refusals.size >= MAX_REFUSAL_KINDS) {
      // Kinds quiet for a period make room; what they had not reported yet is carried by 'overflow'.
      // (The sweep reports such kinds every second, so this carries only what came since.)
      let carried = 0
      let latest: RefusalState['latest']
      for (const [key, state] of this.#refusals) {
        if (key === 'overflow' || now - state.reportedAt < REFUSAL_EVENT_EVERY_MS) continue
        carried += state.unreported
        latest = state.latest ?? latest
        this.#refusals.delete(key)
      }
      if (carried > 0) {
        const overflow = this.#refusals.get('overflow')
        this.#refusals.set('overflow', { reportedAt: overflow?.reportedAt ?? -Infinity, unreported: (overflow?.unreported ?? 0) + carried, latest: overflow?.latest ?? latest })
      }
      if (this.#refusals.size >= MAX_REFUSAL_KINDS) kind = 'overflow'
    }
    const state: RefusalState = this.#refusals.get(kind) ?? { reportedAt: -Infinity, unreported: 0, latest: undefined }
    this.#refusals.set(kind, state)
    state.unreported++
    state.latest = { type, fields }
    if (now - state.reportedAt < REFUSAL_EVENT_EVERY_MS) return
    this.#emitRefusals(state, now)
  }

  /**
   * Refusals held back by the period are reported once it is over, with
   * the latest of them and the count: a burst that ends inside a period
   * would otherwise be reported as its first refusal alone.
   */
  #flushRefusals (): void {
    const now = this.#options.clock.now()
    for (const state of this.#refusals.values()) {
      if (state.unreported > 0 && now - state.reportedAt >= REFUSAL_EVENT_EVERY_MS) this.#emitRefusals(state, now)
    }
  }

  #emitRefusals (state: RefusalState, now: number): void {
    const { latest, unreported: sinceLastReport } = state
    state.reportedAt = now
    state.unreported = 0
    state.latest = undefined
    if (!latest) return
    this.#options.emit(latest.type, { ...latest.fields, details: { ...latest.fields.details, sinceLastReport } })
  }

  // --- certificates of live sessions -------------------------------------------

  /**
   * The handshake checks a certificate once; a session can outlive it. Ends
   * sessions whose certificate expired (the injected clock decides) or whose
   * serial is revoked — the latter whatever its expiry, since a CRL need not
   * list a revoked certificate past its notAfter (RFC 5280 §3.3).
   */
  #sweepSessions (): void {
    const now = this.#options.clock.now()
    for (const [socket, session] of this.#sessions) {
      if (this.#revoked.has(session.serial)) {
        this.#endSession(socket, 'session-revoked', session, 'certificate revoked during session; connection dropped')
      } else if (session.notAfter <= now) {
        this.#endSession(socket, 'session-expired', session, `certificate expired during session (notAfter ${new Date(session.notAfter).toISOString()}); connection dropped`)
      }
    }
  }

  #endSession (socket: TLSSocket, type: SecurityEventType, session: GateSession, reason: string): void {
    this.#sessions.delete(socket)
    this.#options.emit(type, { ...session.fields, serial: session.serial, reason })
    socket.destroy()
  }

  // --- CRL -------------------------------------------------------------------

  /**
   * Reads the CRL file if it changed. A CRL that is not the CA's, or older
   * than the one in force (lower cRLNumber, earlier thisUpdate: a replay
   * that would un-revoke devices, STRIDE S/T), is refused with `crl-invalid`
   * and the one in force stays; at start, any failure is fatal.
   */
  async loadCrl (initial: boolean): Promise<void> {
    const file = this.#options.tls.crl
    let pem: string
    try {
      pem = readFileSync(file, 'utf8')
      if (pem === this.#crl?.pem) return
      const summary = await readCrl(pem, this.#caPem)
      if (this.#crl) assertNotOlder(summary, this.#crl.summary)
      this.#crl = { pem, summary }
      this.#revoked = summary.revokedSerials
      // Session tickets stay good across a new CRL. A resumed session skips
      // OpenSSL's CRL check, so judgeHandshake checks its serial against this
      // CRL (isRevoked) and a revoked device's ticket gets it nowhere; new
      // ticket keys here would cost the whole fleet a full handshake at every
      // revocation, and would part the nodes that share their keys.
      this.#tls.setSecureContext(this.#secureContextOptions())
      if (summary.nextUpdate && summary.nextUpdate.getTime() - this.#options.clock.now() < 7 * 86_400_000) {
        this.#options.logger.warn({ nextUpdate: summary.nextUpdate.toISOString() }, 'CRL lapses within 7 days; run `placeguard pki crl`')
      }
    } catch (error) {
      if (initial) throw new PlaceGuardError('PG_ERR_BROKER_TLS', `CRL ${file}: ${(error as Error).message}`, { field: 'crl', cause: error })
      this.#options.emit('crl-invalid', { reason: `CRL not reloaded, the previous one stays in force: ${(error as Error).message}` })
      return
    }
    if (!initial) this.#options.emit('crl-reloaded', { reason: 'CRL reloaded', details: { revoked: this.#revoked.size } })
    this.#sweepSessions()
  }

  // --- session tickets ---------------------------------------------------------

  /** At each key period's end, the next period's key; every node sharing the secret changes at the same moment. */
  #scheduleTicketRotation (): void {
    const untilNext = (this.#ticketEpoch + 1) * this.#ticketPeriodMs - this.#options.clock.now()
    // setTimeout holds at most 2^31 - 1 ms; a longer wait is taken in steps.
    this.#ticketRotation = setTimeout(() => {
      const epoch = Math.floor(this.#options.clock.now() / this.#ticketPeriodMs)
      if (epoch !== this.#ticketEpoch) {
        this.#ticketEpoch = epoch
        this.#tls.setSecureContext(this.#secureContextOptions())
      }
      this.#scheduleTicketRotation()
    }, Math.min(2 ** 31 - 1, Math.max(1_000, untilNext)))
    this.#ticketRotation.unref()
  }

  #secureContextOptions (): { ca: string, cert: string, key: string, crl?: string, sessionIdContext: string, sessionTimeout: number, ticketKeys: Buffer } {
    const { tls } = this.#options
    return {
      ca: this.#caPem,
      cert: readTls(tls.serverCert, 'server certificate'),
      key: readTls(tls.serverKey, 'server key'),
      ...(this.#crl ? { crl: this.#crl.pem } : {}),
      // Node's default context is a hash of the process's argv: each node
      // (its own --node-id) would refuse the others' sessions. Tied to the
      // fleet CA instead: a ticket from another fleet's broker never resumes.
      sessionIdContext: createHash('sha256').update(this.ca.raw).digest('hex').slice(0, 32),
      sessionTimeout: this.#limits.tlsTicketLifetimeSec,
      ticketKeys: ticketKey(this.#ticketSecret, this.#ticketEpoch),
    }
  }
}

/**
 * Node's 48-byte ticket key (name, HMAC key, AES key) for one key period,
 * derived from the secret (HKDF, RFC 5869): nodes with the same secret agree
 * on every period's key without talking, and a leaked key is good for one
 * period only.
 */
export function ticketKey (secret: Buffer, epoch: number): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, Buffer.alloc(0), `placeguard tls ticket key ${epoch}`, 48))
}

/**
 * The ticket-key secret: 32 random bytes, hex, created on first start
 * (mode 0600, never overwritten: `wx`). Whoever holds it can mint a ticket
 * for any device, so it is as secret as the server key and never logged.
 * Undefined when there is none and its directory is read-only.
 */
/** RFC 5280 §5.2.3: cRLNumber only grows; §5.1.2.4: thisUpdate is the issue date. */
function assertNotOlder (next: CrlSummary, current: CrlSummary): void {
  if (current.crlNumber !== undefined) {
    if (next.crlNumber === undefined) throw new Error(`the new CRL has no CRL number; the one in force has ${current.crlNumber}`)
    if (next.crlNumber < current.crlNumber) throw new Error(`the new CRL's number ${next.crlNumber} is lower than ${current.crlNumber} in force (an older CRL)`)
  }
  if (next.thisUpdate.getTime() < current.thisUpdate.getTime()) {
    throw new Error(`the new CRL was issued ${next.thisUpdate.toISOString()}, before the one in force (${current.thisUpdate.toISOString()})`)
  }
}

function tupleOf (socket: { localAddress?: string, localPort?: number, remoteAddress?: string, remotePort?: number }): string {
  return `${socket.localAddress}|${socket.localPort}|${socket.remoteAddress}|${socket.remotePort}`
}

export function addressOf (socket: { remoteAddress?: string, remotePort?: number }): string {
  return `${socket.remoteAddress ?? 'unknown'}:${socket.remotePort ?? 0}`
}

function readTls (path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8')
  } catch (error) {
    throw new PlaceGuardError('PG_ERR_BROKER_TLS', `cannot read the ${what} at ${path}: ${(error as Error).message}`, {
      hint: 'run `placeguard pki init` with the same --data-dir', cause: error,
    })
  }
}
