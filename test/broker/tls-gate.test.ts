import { X509Certificate } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect as tcpConnect, createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { BrokerLimits } from '../../broker/index.ts'
import { addressKey } from '../../shared/address-key.ts'
import { connectClient, type RunningBroker, startBroker, waitFor } from '../helpers/broker.ts'
import { createTestFleet, type TestFleet } from '../helpers/fleet.ts'

let fleet: TestFleet
const started: RunningBroker[] = []
const sockets: Socket[] = []

beforeAll(async () => {
  fleet = await createTestFleet(['gate-1', 'gate-2', 'gate-3', 'gate-4'].map((id) => ({ deviceId: id, kind: 'flood', site: 'gate-site' })))
})

afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy()
  for (const running of started.splice(0)) await running.close()
})

afterAll(() => fleet?.cleanup())

async function broker (limits: Partial<BrokerLimits>, clock?: { now: () => number }): Promise<RunningBroker> {
  const running = await startBroker(fleet, limits, { clock })
  started.push(running)
  return running
}

interface IdleSocket { socket: Socket, closed: Promise<void>, isClosed: () => boolean }

/** A TCP connection that never says a word, from another loopback address than the devices use. */
async function idleSocket (port: number, localAddress = '127.0.0.2'): Promise<IdleSocket> {
  const socket = tcpConnect({ host: '127.0.0.1', port, localAddress })
  sockets.push(socket)
  socket.on('error', () => {})
  let closed = false
  const closedPromise = new Promise<void>((resolve) => socket.once('close', () => { closed = true; resolve() }))
  await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
  return { socket, closed: closedPromise, isClosed: () => closed }
}

const topic = (id: string) => `places/gate-site/flood/${id}/telemetry`

/** A device connects and has a publish acknowledged (QoS 1 PUBACK). */
async function deviceConnectsAndPublishes (running: RunningBroker, id: string): Promise<void> {
  const device = await connectClient(running.url, fleet, fleet.device(id), id)
  try {
    await device.publishAsync(topic(id), JSON.stringify({ level: 1 }), { qos: 1 })
  } finally {
    device.end(true)
  }
}

/** The bytes of a real ClientHello, captured from Node's TLS client. */
async function clientHello (): Promise<Buffer> {
  const server = createTcpServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const captured = new Promise<Buffer>((resolve) => server.once('connection', (socket) => socket.once('data', (data) => { resolve(data); socket.destroy() })))
  const client = tlsConnect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, rejectUnauthorized: false })
  client.on('error', () => {})
  const hello = await captured
  client.destroy()
  server.close()
  return hello
}

describe('TLS gate: pre-authentication lockout (STRIDE D)', () => {
  it('closes a silent connection at the handshake timeout, and reports it once', async () => {
    const running = await broker({ handshakeTimeoutMs: 500 })
    const idle = await idleSocket(running.port)
    await idle.closed
    expect(idle.isClosed()).toBe(true)
    // The TLS socket the gate destroyed fails too (ECONNRESET): that is the
    // gate's own doing, not the peer hanging up, and must not be a second report.
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(running.events.map((e) => e.code)).toEqual(['HANDSHAKE_TIMEOUT'])
  })

  it('closes a peer sending its ClientHello a byte at a time at the handshake deadline', async () => {
    const running = await broker({ handshakeTimeoutMs: 1_000 })
    const hello = await clientHello()
    const slow = await idleSocket(running.port)
    let sent = 0
    const trickle = setInterval(() => {
      if (slow.isClosed() || sent >= hello.length) return
      slow.socket.write(hello.subarray(sent, sent + 1))
      sent++
    }, 100)
    try {
      await slow.closed
    } finally {
      clearInterval(trickle)
    }
    // Closed before the whole ClientHello (hundreds of bytes, tens of seconds) was in.
    expect(sent).toBeLessThan(hello.length)
    const event = await running.waitForEvent((e) => e.type === 'tls-rejected' && e.code === 'HANDSHAKE_TIMEOUT')
    expect(event.remoteAddress).toMatch(/^127\.0\.0\.2:/)
  })

  it('keeps a handshake that waits for a saturated broker past its deadline, to three times it; a silent peer goes on time', async () => {
    let offsetMs = 0
    const running = await broker({ handshakeTimeoutMs: 1_000 }, { now: () => Date.now() + offsetMs })
    const hello = await clientHello()
    const acceptedAt = performance.now()
    // A device part-way through its handshake, and a socket that has said nothing.
    const partway = await idleSocket(running.port, '127.0.0.2')
    partway.socket.write(hello.subarray(0, 40))
    const silent = await idleSocket(running.port, '127.0.0.3')
    await new Promise((resolve) => setTimeout(resolve, 100))
    // The broker's event loop (this process's) busy past the deadline, as in
    // a reconnect storm: the handshake is late through no fault of its peer.
    const until = performance.now() + 2_500
    while (performance.now() < until) { /* saturated */ }
    await silent.closed
    // Both deadlines were due in the same turn of the loop, the kept one's first.
    expect(partway.isClosed()).toBe(false)
    expect(running.events.filter((e) => e.remoteAddress?.startsWith('127.0.0.2:') === true)).toEqual([])
    // Saturation over, the handshake is dropped once three deadlines have passed.
    await partway.closed
    const keptMs = performance.now() - acceptedAt
    expect(keptMs).toBeGreaterThan(2_500)
    expect(keptMs).toBeLessThan(8_000)
    const silentEvent = await running.waitForEvent((e) => e.code === 'HANDSHAKE_TIMEOUT' && e.remoteAddress?.startsWith('127.0.0.3:') === true)
    expect(silentEvent.reason).toBe('TLS handshake not finished within 1000 ms')
    // Held back by the period of one report per kind, and reported when it is over, with its count.
    offsetMs += 10_000
    const keptEvent = await running.waitForEvent((e) => e.code === 'HANDSHAKE_TIMEOUT' && e.remoteAddress?.startsWith('127.0.0.2:') === true)
    expect(keptEvent.reason).toMatch(/^TLS handshake not finished within 1000 ms \(kept \d+ ms while the broker was saturated\)$/)
    expect(keptEvent.details).toMatchObject({ sinceLastReport: 1 })
    // By the gate's deadline, not Node's idle backstop; and each handshake once.
    expect(running.events.map((e) => e.code)).toEqual(['HANDSHAKE_TIMEOUT', 'HANDSHAKE_TIMEOUT'])
  })

  it('reports a peer that hangs up mid-handshake as HANDSHAKE_ABANDONED, with its address (read at accept: a closed socket has none)', async () => {
    const running = await broker({})
    const hello = await clientHello()
    const peer = await idleSocket(running.port)
    peer.socket.end(hello.subarray(0, 20)) // part of a ClientHello, then gone
    await peer.closed
    const event = await running.waitForEvent((e) => e.type === 'tls-rejected' && e.code === 'HANDSHAKE_ABANDONED')
    expect(event.reason).toMatch(/^TLS handshake abandoned: the peer closed the connection \(.*socket hang up.*\)$/)
    expect(event.details).toMatchObject({ cause: 'ECONNRESET', sinceLastReport: 1 })
    expect(event.remoteAddress).toMatch(/^127\.0\.0\.2:\d+$/)
  })

  it('does not let abandoned handshakes hold back the report of another handshake failure', async () => {
    const running = await broker({})
    const hello = await clientHello()
    for (let i = 0; i < 3; i++) {
      const peer = await idleSocket(running.port)
      peer.socket.end(hello.subarray(0, 20))
      await peer.closed
    }
    // Then, within the 10 s in which one kind of refusal is reported once, bytes that are no TLS at all.
    const garbage = await idleSocket(running.port, '127.0.0.3')
    garbage.socket.end('GET / HTTP/1.1\r\nHost: broker\r\n\r\n')
    await garbage.closed
    const failed = await running.waitForEvent((e) => e.type === 'tls-rejected' && e.remoteAddress?.startsWith('127.0.0.3:') === true)
    expect(failed.code).not.toBe('HANDSHAKE_ABANDONED')
    expect(failed.reason).toMatch(/^TLS handshake failed: /)
    expect(running.events.filter((e) => e.code === 'HANDSHAKE_ABANDONED')).toHaveLength(1)
  })

  it('caps idle connections per address: a device still connects and publishes, and the refusals make one event', async () => {
    const running = await broker({ maxConnections: 10, reservedConnections: 2, maxConnectionsPerAddress: 6, maxHandshakesPerAddress: 3 })
    // Ten silent peers from one address: without a per-address cap they would hold every slot.
    const idle: IdleSocket[] = []
    for (let i = 0; i < 10; i++) idle.push(await idleSocket(running.port))
    await waitFor(() => idle.filter((s) => s.isClosed()).length === 7, 10_000, 'the seven sockets beyond the cap to be closed')
    await deviceConnectsAndPublishes(running, 'gate-1')
    expect(idle.filter((s) => s.isClosed())).toHaveLength(7)
    const refusals = running.events.filter((e) => e.type === 'connection-limit')
    expect(refusals).toHaveLength(1)
    expect(refusals[0]!.reason).toBe('connection refused: 3 TLS handshakes already in progress from this address')
  })

  it('evicts a silent handshake before the oldest: a peer part-way through its ClientHello outlasts silent sockets opened after it', async () => {
    const running = await broker({ maxConnections: 6, reservedConnections: 2 })
    const hello = await clientHello()
    // The oldest handshake, and the only one under way: a device slow to finish on a loaded broker.
    const started = await idleSocket(running.port, '127.0.0.20')
    started.socket.write(hello.subarray(0, 40))
    await new Promise((resolve) => setTimeout(resolve, 100))
    // Silent sockets from other addresses, beyond the four unauthenticated slots.
    const silent: IdleSocket[] = []
    for (let i = 0; i < 6; i++) silent.push(await idleSocket(running.port, `127.0.0.${30 + i}`))
    await waitFor(() => silent.filter((s) => s.isClosed()).length === 3, 10_000, 'three silent sockets to give way')
    expect(started.isClosed()).toBe(false)
    // Reported as evictions (one event for the three, by the period), not as peers that hung up.
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect(running.events.map((e) => e.type)).toEqual(['connection-limit'])
    expect(running.events[0]).toMatchObject({ reason: 'TLS handshake dropped: 4 unauthenticated connections at once is the limit' })
  })

  it('does not cap connected devices per address: a site behind one NAT keeps every device online', async () => {
    const running = await broker({ maxConnectionsPerAddress: 2, maxHandshakesPerAddress: 2 })
    // Four devices from 127.0.0.1, one after another, all staying connected: only
    // connections not yet past CONNECT count against their address.
    const online = []
    for (const id of ['gate-1', 'gate-2', 'gate-3', 'gate-4']) online.push(await connectClient(running.url, fleet, fleet.device(id), id))
    expect(online.every((client) => client.connected)).toBe(true)
    expect(running.events.filter((e) => e.type === 'connection-limit')).toEqual([])
    // Idle peers from that address still meet the cap.
    const idle: IdleSocket[] = []
    for (let i = 0; i < 4; i++) idle.push(await idleSocket(running.port, '127.0.0.1'))
    await waitFor(() => idle.filter((s) => s.isClosed()).length === 2, 10_000, 'the two idle sockets beyond the cap to be closed')
    for (const client of online) client.end(true)
  })

  it('keeps the reserved slots from unauthenticated peers: a device connects while silent peers fill the table', async () => {
    const running = await broker({ maxConnections: 4, reservedConnections: 2 })
    const idle: IdleSocket[] = []
    // From four addresses, so only the total limit and the reserve are in play.
    for (let i = 0; i < 4; i++) idle.push(await idleSocket(running.port, `127.0.0.${10 + i}`))
    await waitFor(() => idle.filter((s) => s.isClosed()).length === 2, 10_000, 'two of the four silent peers to give way')
    await deviceConnectsAndPublishes(running, 'gate-2')
    // The device took an unauthenticated slot while in its handshake, so one more silent peer gave way for it.
    expect(idle.filter((s) => !s.isClosed()).length).toBeLessThanOrEqual(2)
    // A second device in session while the last silent peer still waits: the reserve holds authenticated sessions.
    const first = await connectClient(running.url, fleet, fleet.device('gate-3'), 'gate-3')
    await deviceConnectsAndPublishes(running, 'gate-4')
    expect(first.connected).toBe(true)
    first.end(true)
  })

  it('reports a certificate refused again and again once per period, with the count, and what the period held back once it is over', async () => {
    let offsetMs = 0
    const running = await broker({}, { now: () => Date.now() + offsetMs })
    const dir = mkdtempSync(join(tmpdir(), 'placeguard-foreign-'))
    try {
      execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-subj', '/CN=intruder-1',
        '-keyout', join(dir, 'k.pem'), '-out', join(dir, 'c.pem')], { stdio: 'ignore' })
      const foreign = { cert: join(dir, 'c.pem'), key: join(dir, 'k.pem') }
      for (let i = 0; i < 5; i++) await expect(connectClient(running.url, fleet, foreign, 'intruder-1')).rejects.toThrow()
      const rejected = () => running.events.filter((e) => e.type === 'tls-rejected' && e.claimedId === 'intruder-1')
      expect(rejected()).toHaveLength(1)
      expect(rejected()[0]).toMatchObject({ code: 'DEPTH_ZERO_SELF_SIGNED_CERT', details: { sinceLastReport: 1 } })
      // The burst is over; once the period is, the four held back are reported without a fifth refusal.
      offsetMs += 10_000
      await waitFor(() => rejected().length === 2, 5_000, 'the held-back refusals to be reported')
      expect(rejected()[1]).toMatchObject({ code: 'DEPTH_ZERO_SELF_SIGNED_CERT', details: { sinceLastReport: 4 } })
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('TLS gate: certificates of live sessions', () => {
  it('drops a live session when its certificate passes notAfter, with a session-expired event', async () => {
    let offsetMs = 0
    const running = await broker({}, { now: () => Date.now() + offsetMs })
    const device = await connectClient(running.url, fleet, fleet.device('gate-1'), 'gate-1')
    const closed = new Promise<void>((resolve) => device.once('close', () => resolve()))
    const notAfter = new Date(new X509Certificate(readFileSync(fleet.device('gate-1').cert)).validTo)
    offsetMs = notAfter.getTime() - Date.now() + 1_000
    await closed
    const event = await running.waitForEvent((e) => e.type === 'session-expired')
    expect(event).toMatchObject({ deviceId: 'gate-1', reason: expect.stringContaining('certificate expired during session') })
    device.end(true)
  })

  it('refuses a CRL older than the one in force (a replay that would un-revoke a device)', async () => {
    const running = await broker({})
    const older = readFileSync(fleet.paths.crl, 'utf8')
    await fleet.pki.revoke('gate-4')
    await running.waitForEvent((e) => e.type === 'crl-reloaded' && e.details?.revoked === 1)
    writeFileSync(fleet.paths.crl, older)
    const event = await running.waitForEvent((e) => e.type === 'crl-invalid')
    expect(event.reason).toMatch(/lower than .* in force/)
    await expect(connectClient(running.url, fleet, fleet.device('gate-4'), 'gate-4')).rejects.toThrow()
    await running.waitForEvent((e) => e.type === 'tls-rejected' && e.deviceId === 'gate-4' && e.code === 'CERT_REVOKED')
  })
})

describe('addressKey: what a per-address cap counts', () => {
  it('counts an IPv6 /64 as one address, and an IPv4-mapped address as its IPv4 address', () => {
    expect(addressKey('2001:db8:1:2::5')).toBe(addressKey('2001:0db8:0001:0002:aaaa:bbbb:cccc:1'))
    expect(addressKey('2001:db8:1:2::5')).not.toBe(addressKey('2001:db8:1:3::5'))
    expect(addressKey('::1')).toBe('0:0:0:0::/64')
    expect(addressKey('::ffff:10.0.0.1')).toBe('10.0.0.1')
    expect(addressKey('10.0.0.1')).toBe('10.0.0.1')
  })
})
