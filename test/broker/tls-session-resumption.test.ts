import { execFileSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect as tlsConnect, type TLSSocket } from 'node:tls'
import mqtt, { type MqttClient } from 'mqtt'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { DEFAULT_BROKER_LIMITS } from '../../broker/index.ts'
import { ticketKey, TlsGate } from '../../broker/tls-gate.ts'
import { TICKET_SECRET_FILE } from '../../pki/index.ts'
import { systemClock } from '../../shared/clock.ts'
import { createLogger } from '../../shared/logger.ts'
import { type RunningBroker, startBroker, waitFor } from '../helpers/broker.ts'
import { createTestFleet, read, type TestFleet } from '../helpers/fleet.ts'

let fleet: TestFleet
const started: Array<{ close: () => Promise<void> }> = []
const clients: MqttClient[] = []
const dirs: string[] = []

beforeAll(async () => {
  fleet = await createTestFleet(['resume-1', 'resume-2', 'resume-revoked', 'resume-gate'].map((id) => ({ deviceId: id, kind: 'flood', site: 'resume-site' })))
})

afterEach(async () => {
  for (const client of clients.splice(0)) client.end(true)
  for (const running of started.splice(0)) await running.close()
})

afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
  fleet?.cleanup()
})

const topic = (id: string) => `places/resume-site/flood/${id}/telemetry`

interface Attempt { client: MqttClient, connected: Promise<void>, secure: Promise<TLSSocket>, session: Promise<Buffer> }

/**
 * An mqtt.js device connection offering `session` (a ticket from an earlier
 * one) if given. Its TLS stream is built inside mqtt.connect, so listening
 * right after it returns catches the handshake and the ticket that follows.
 */
function attempt (running: RunningBroker, id: string, session?: Buffer): Attempt {
  const files = fleet.device(id)
  const client = mqtt.connect(running.url, {
    ca: read(fleet.paths.caCert), cert: read(files.cert), key: read(files.key), clientId: id, reconnectPeriod: 0, connectTimeout: 5_000,
    ...(session ? { session } : {}),
  })
  clients.push(client)
  const stream = client.stream as TLSSocket
  const connected = new Promise<void>((resolve, reject) => { client.once('connect', () => resolve()); client.once('close', () => reject(new Error('closed before CONNACK'))) })
  connected.catch(() => {}) // a refused attempt is awaited through its close instead
  return {
    client,
    connected,
    secure: new Promise((resolve) => stream.once('secureConnect', () => resolve(stream))),
    session: new Promise((resolve) => stream.once('session', resolve)),
  }
}

async function broker (): Promise<RunningBroker> {
  const running = await startBroker(fleet)
  started.push(running)
  return running
}

describe('TLS session resumption at the broker', () => {
  it('a resumed session carries the device certificate\'s identity, for the ACL as for events', async () => {
    const running = await broker()
    const first = attempt(running, 'resume-1')
    await first.connected
    const ticket = await first.session
    expect((await first.secure).isSessionReused()).toBe(false)
    first.client.end(true)

    const second = attempt(running, 'resume-1', ticket)
    await second.connected
    expect((await second.secure).isSessionReused()).toBe(true)
    // Its own topic is allowed: the broker knows it as resume-1 …
    await second.client.publishAsync(topic('resume-1'), JSON.stringify({ level: 1 }), { qos: 1 })
    // … and a neighbour's is refused in resume-1's name.
    second.client.publish(topic('resume-2'), JSON.stringify({ level: 1 }), { qos: 1 })
    const denied = await running.waitForEvent((event) => event.type === 'acl-denied')
    expect(denied.deviceId).toBe('resume-1')
  })

  it('a revoked device does not get back in with a ticket issued before its revocation', async () => {
    const running = await broker()
    const first = attempt(running, 'resume-revoked')
    await first.connected
    const ticket = await first.session
    await fleet.pki.revoke('resume-revoked')
    await running.waitForEvent((event) => event.type === 'session-revoked' && event.deviceId === 'resume-revoked')

    const second = attempt(running, 'resume-revoked', ticket)
    const closed = new Promise<void>((resolve) => second.client.once('close', () => resolve()))
    // The TLS layer resumes the session (the ticket is good): the broker's own check must refuse it.
    expect((await second.secure).isSessionReused()).toBe(true)
    await closed
    expect(second.client.connected).toBe(false)
    const refused = await running.waitForEvent((event) => event.type === 'tls-rejected' && event.code === 'CERT_REVOKED')
    expect(refused.deviceId).toBe('resume-revoked')
  })
})

describe('TLS gate: ticket keys', () => {
  /** A gate on the fleet's certificates; `serverDir` holds the server key and the ticket secret. */
  async function gate (serverDir: string): Promise<{ gate: TlsGate, port: number, peers: string[] }> {
    const peers: string[] = []
    const tlsGate = new TlsGate({
      tls: { caCert: fleet.paths.caCert, serverCert: join(serverDir, 'server.crt'), serverKey: join(serverDir, 'server.key'), crl: fleet.paths.crl },
      host: '127.0.0.1', port: 0, limits: DEFAULT_BROKER_LIMITS, clock: systemClock, logger: createLogger({ level: 'silent' }),
      emit: () => {},
      // OpenSSL sends the tickets with the server's first write (the broker's is CONNACK); the client closes once it has one.
      onSecureConnection: (socket) => { peers.push(String(socket.getPeerCertificate().subjectaltname)); socket.write('.') },
    })
    await tlsGate.loadCrl(true)
    const { port } = await tlsGate.listen()
    started.push(tlsGate)
    return { gate: tlsGate, port, peers }
  }

  /** A copy of the server certificate and key in a directory of its own: another node, or the same one restarted. */
  function serverDir (withSecretFrom?: string): string {
    const dir = mkdtempSync(join(tmpdir(), 'placeguard-ticket-'))
    dirs.push(dir)
    copyFileSync(fleet.paths.serverCert, join(dir, 'server.crt'))
    copyFileSync(fleet.paths.serverKey, join(dir, 'server.key'))
    if (withSecretFrom) copyFileSync(join(withSecretFrom, TICKET_SECRET_FILE), join(dir, TICKET_SECRET_FILE))
    return dir
  }

  /**
   * One handshake as resume-gate. Without a ticket to offer, resolves with
   * the first one the server sends; with one, once the server's first byte
   * is in (OpenSSL sends no new ticket on a resumed session).
   */
  function handshake (port: number, session?: Buffer): Promise<{ ticket: Buffer | undefined, reused: boolean }> {
    const files = fleet.device('resume-gate')
    const socket = tlsConnect({ host: '127.0.0.1', port, ca: read(fleet.paths.caCert), cert: read(files.cert), key: read(files.key), servername: 'localhost', checkServerIdentity: () => undefined, session })
    return new Promise((resolve, reject) => {
      socket.once('error', reject)
      socket.once(session ? 'data' : 'session', (ticket: Buffer) => { resolve({ ticket: session ? undefined : ticket, reused: socket.isSessionReused() }); socket.destroy() })
    })
  }

  it('counts full and resumed handshakes, and a resumed one yields the same certificate', async () => {
    const { gate: node, port, peers } = await gate(serverDir())
    const first = await handshake(port)
    const second = await handshake(port, first.ticket!)
    expect([first.reused, second.reused]).toEqual([false, true])
    await waitFor(() => peers.length === 2)
    expect(node.handshakeCounts).toEqual({ full: 1, resumed: 1 })
    expect(peers[1]).toBe(peers[0])
    expect(peers[0]).toContain('resume-gate')
  })

  it('a ticket resumes on a restarted broker or another node with the same secret, and on no node without it', async () => {
    const dirA = serverDir()
    const a = await gate(dirA)
    const ticket = (await handshake(a.port)).ticket!
    await a.gate.close()

    const restarted = await gate(serverDir(dirA))
    expect((await handshake(restarted.port, ticket)).reused).toBe(true)
    const stranger = await gate(serverDir())
    expect((await handshake(stranger.port, ticket)).reused).toBe(false)
    expect(stranger.gate.handshakeCounts).toEqual({ full: 1, resumed: 0 })
  })

  it('with a read-only pki/ and no secret in it: tickets work until a restart, and nothing is written', async (context) => {
    // A container mounting the published PKI read-only: a real read-only filesystem (root ignores permissions).
    const dir = mkdtempSync(join(tmpdir(), 'placeguard-ticket-ro-'))
    dirs.push(dir)
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir], { stdio: 'pipe' })
    } catch (error) {
      context.skip(`mounting a tmpfs was refused (needs root): ${String((error as { stderr?: Buffer }).stderr ?? error)}`)
    }
    try {
      copyFileSync(fleet.paths.serverCert, join(dir, 'server.crt'))
      copyFileSync(fleet.paths.serverKey, join(dir, 'server.key'))
      execFileSync('mount', ['-o', 'remount,ro', dir], { stdio: 'pipe' })
      const first = await gate(dir)
      const ticket = (await handshake(first.port)).ticket!
      expect((await handshake(first.port, ticket)).reused).toBe(true)
      expect(existsSync(join(dir, TICKET_SECRET_FILE))).toBe(false)
      await first.gate.close()
      // Restarted: a new secret in memory, so the old ticket gets a full handshake (never a refusal).
      const restarted = await gate(dir)
      expect((await handshake(restarted.port, ticket)).reused).toBe(false)
      expect(restarted.gate.handshakeCounts).toEqual({ full: 1, resumed: 0 })
      await restarted.gate.close()
    } finally {
      execFileSync('umount', ['-l', dir])
    }
  })

  it('derives one key per period from the secret: the same on every node, another the next period', () => {
    const secret = Buffer.alloc(32, 7)
    expect(ticketKey(secret, 100)).toHaveLength(48)
    expect(ticketKey(secret, 100).equals(ticketKey(Buffer.from(secret), 100))).toBe(true)
    expect(ticketKey(secret, 100).equals(ticketKey(secret, 101))).toBe(false)
    expect(ticketKey(secret, 100).equals(ticketKey(Buffer.alloc(32, 8), 100))).toBe(false)
  })
})
