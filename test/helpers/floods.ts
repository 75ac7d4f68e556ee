/**
 * Floods against the broker, and a good device that measures what it still
 * gets while one runs. Shared by test/adversarial/floods.test.ts (which
 * asserts) and bench/adversarial.ts (which prints the figures).
 *
 * Attackers use loopback source addresses other than 127.0.0.1 (all of
 * 127.0.0.0/8 is loopback here), so a per-address defence can tell them
 * from the good device, which connects from 127.0.0.1.
 */
import { randomBytes } from 'node:crypto'
import { request } from 'node:http'
import { connect as connectTcp, createServer, type Socket } from 'node:net'
import { performance } from 'node:perf_hooks'
import { connect as connectTls, type SecureContext } from 'node:tls'
import mqttPacket, { type Packet } from 'mqtt-packet'
import { connectClient } from './broker.ts'
import type { TestFleet } from './fleet.ts'

export interface Attack {
  name: string
  /** Attempts the attacker made (connections, handshakes, packets: see the attack). */
  attempts: () => number
  /** The attacker's TCP connections open right now. */
  holding: () => number
  stop: () => Promise<void>
}

/** `count` loopback addresses from 127.<base>.0.1 on, for an attacker that looks like many hosts. */
export function loopbackAddresses (count: number, base = 1): string[] {
  return Array.from({ length: count }, (_, i) => `127.${base}.${Math.floor(i / 250)}.${(i % 250) + 1}`)
}

/** Sockets an attack holds open, destroyed when it stops; those connected are counted. */
const liveSockets = new Set<Socket>()
let connected = 0

/** Runs `step` in `width` loops until stopped; each loop waits for its step to end (bounded by the step). */
function loops (name: string, width: number, step: (lane: number) => Promise<void>): Attack {
  let running = true
  let attempts = 0
  const lanes = Array.from({ length: width }, async (_, lane) => {
    while (running) {
      attempts++
      await step(lane).catch(() => {})
    }
  })
  return {
    name,
    attempts: () => attempts,
    holding: () => connected,
    stop: async () => {
      running = false
      for (const socket of liveSockets) socket.destroy()
      await Promise.all(lanes)
    },
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** A TCP connection that ends (closed by either side, or `ms` passes). */
function held (socket: Socket, ms: number, onConnect?: () => void): Promise<void> {
  liveSockets.add(socket)
  return new Promise((resolve) => {
    const timer = setTimeout(() => socket.destroy(), ms)
    let counted = false
    socket.once('connect', () => { counted = true; connected++; onConnect?.() })
    socket.on('error', () => {})
    socket.once('close', () => {
      clearTimeout(timer)
      liveSockets.delete(socket)
      if (counted) connected--
      resolve()
    })
  })
}

/** Keeps `count` TCP sockets open that never speak; one the broker closes is opened again (STRIDE D: pre-auth slots). */
export function idleSockets (port: number, count: number, addresses = ['127.0.0.2']): Attack {
  return loops(`idle TCP sockets from ${addresses.length} address${addresses.length > 1 ? 'es' : ''}`, count, (lane) => held(connectTcp({ host: '127.0.0.1', port, localAddress: addresses[lane % addresses.length] }), 600_000).then(() => sleep(50)))
}

/** The first flight of a TLS client, captured once, to replay slowly. */
export async function captureClientHello (context: SecureContext): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const server = createServer((socket) => {
      socket.once('data', (chunk: Buffer) => { resolve(chunk); socket.destroy(); server.close() })
    })
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      const client = connectTls({ host: '127.0.0.1', port, secureContext: context, servername: 'localhost' })
      client.on('error', () => {})
    })
    server.on('error', reject)
  })
}

/** `count` connections that send a ClientHello a byte a second (slowloris on the handshake). */
export function slowHandshakes (port: number, count: number, clientHello: Buffer, addresses = ['127.0.0.3']): Attack {
  return loops('slow handshakes (1 byte/s)', count, async (lane) => {
    const socket = connectTcp({ host: '127.0.0.1', port, localAddress: addresses[lane % addresses.length] })
    let sent = 0
    let timer: NodeJS.Timeout | undefined
    await held(socket, 600_000, () => {
      timer = setInterval(() => { if (sent < clientHello.length) socket.write(clientHello.subarray(sent, ++sent)) }, 1_000)
    })
    clearInterval(timer)
    await sleep(50)
  })
}

/** Full mutual-TLS handshakes, each closed as soon as it completes, `width` at a time. */
export function handshakeStorm (port: number, context: SecureContext, width: number, addresses: string[]): Attack {
  let next = 0
  return loops(`handshake storm from ${addresses.length} address${addresses.length > 1 ? 'es' : ''}`, width, () => {
    const raw = connectTcp({ host: '127.0.0.1', port, localAddress: addresses[next++ % addresses.length] })
    const socket = connectTls({ socket: raw, secureContext: context, servername: 'localhost' })
    socket.once('secureConnect', () => socket.destroy())
    socket.on('error', () => {}) // refusals are what a storm expects
    raw.on('error', () => {})
    return held(raw, 10_000)
  })
}

/** Writes `opening` and waits for the broker's first answer, then `rest`, and holds until the broker closes or `ms` passes. */
function mqttSession (port: number, context: SecureContext, address: string, opening: Packet, rest: Buffer[], ms: number): Promise<void> {
  const raw = connectTcp({ host: '127.0.0.1', port, localAddress: address })
  const socket = connectTls({ socket: raw, secureContext: context, servername: 'localhost' })
  raw.on('error', () => {})
  socket.on('error', () => {})
  socket.once('secureConnect', () => socket.write(mqttPacket.generate(opening)))
  let answered = false
  socket.on('data', () => {
    if (answered) return
    answered = true
    for (const chunk of rest) socket.write(chunk)
    if (rest.length === 0) socket.destroy()
  })
  return held(raw, ms)
}

const connectPacket = (clientId: string): Packet => ({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId, keepalive: 30 })

/** CONNECT storms with valid certificates: handshake, CONNECT, CONNACK, close; one identity per lane. */
export function connectStorm (port: number, identities: Array<{ deviceId: string, context: SecureContext }>, addresses = ['127.0.0.4']): Attack {
  return loops('CONNECT storm (valid certificates)', identities.length, (lane) =>
    mqttSession(port, identities[lane]!.context, addresses[lane % addresses.length]!, connectPacket(identities[lane]!.deviceId), [], 10_000))
}

/** One SUBSCRIBE carrying `filters` topic filters, inside and outside the device's ACL, again and again. */
export function subscriptionBomb (port: number, identity: { deviceId: string, context: SecureContext, topic: string }, filters: number, address = '127.0.0.5'): Attack {
  const own = identity.topic.replace(/\/telemetry$/, '')
  const subscribe = mqttPacket.generate({
    cmd: 'subscribe', messageId: 1,
    subscriptions: Array.from({ length: filters }, (_, i) => ({ topic: i % 2 === 0 ? `${own}/x${i}/+` : `places/other/x${i}/#`, qos: 1 as const })),
  })
  return loops(`subscription bomb (${filters} filters)`, 1, () =>
    mqttSession(port, identity.context, address, connectPacket(identity.deviceId), [subscribe], 5_000))
}

/** A PUBLISH and a SUBSCRIBE whose topics have `levels` levels, again and again. */
export function topicDepthBomb (port: number, identity: { deviceId: string, context: SecureContext, topic: string }, levels: number, address = '127.0.0.6'): Attack {
  const deep = `${identity.topic}/${Array.from({ length: levels }, () => 'a').join('/')}`
  const publish = mqttPacket.generate({ cmd: 'publish', topic: deep, payload: Buffer.from('{}'), qos: 1, messageId: 1, retain: false, dup: false })
  const subscribe = mqttPacket.generate({ cmd: 'subscribe', messageId: 2, subscriptions: [{ topic: `${deep.replace(/\/telemetry\/.*$/, '')}/${Array.from({ length: levels }, () => '+').join('/')}`, qos: 1 }] })
  return loops(`topic-depth bomb (${levels} levels)`, 1, () =>
    mqttSession(port, identity.context, address, connectPacket(identity.deviceId), [subscribe, publish], 5_000))
}

export interface ProbeResult {
  connects: number
  connectsOk: number
  publishes: number
  acked: number
  /** PUBACK latency of the acked publishes, ms. */
  ackMs: number[]
  errors: string[]
}

/**
 * What a good device gets: `rounds` times connect (from 127.0.0.1, its own
 * certificate), publish `perRound` QoS 1 messages one after another, disconnect.
 */
export async function probeGoodDevice (url: string, fleet: TestFleet, deviceId: string, topic: string, rounds: number, perRound: number): Promise<ProbeResult> {
  const result: ProbeResult = { connects: 0, connectsOk: 0, publishes: 0, acked: 0, ackMs: [], errors: [] }
  for (let round = 0; round < rounds; round++) {
    result.connects++
    let client
    try {
      client = await connectClient(url, fleet, fleet.device(deviceId), deviceId, { connectTimeout: 10_000 })
      result.connectsOk++
    } catch (error) {
      result.errors.push(`connect ${round}: ${(error as Error).message}`)
      result.publishes += perRound
      continue
    }
    for (let i = 0; i < perRound; i++) {
      result.publishes++
      const started = performance.now()
      try {
        await withTimeout(client.publishAsync(topic, JSON.stringify({ round, i }), { qos: 1 }), 15_000)
        result.ackMs.push(performance.now() - started)
        result.acked++
      } catch (error) {
        result.errors.push(`publish ${round}.${i}: ${(error as Error).message}`)
      }
    }
    await client.endAsync().catch(() => client.end(true))
  }
  return result
}

/** `promise`, or a rejection after `ms`: no wait on the broker is unbounded. */
export function withTimeout<T> (promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  return Promise.race([promise, new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`no PUBACK within ${ms} ms`)), ms) })])
    .finally(() => clearTimeout(timer))
}

export function percentile (values: number[], p: number): number | undefined {
  if (values.length === 0) return undefined
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]
}

/** GET with a bearer token from a chosen loopback address; resolves with the status (0: refused or timed out at the socket). */
export function httpGet (port: number, path: string, token: string, localAddress: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, localAddress, headers: { authorization: `Bearer ${token}` }, agent: false }, (res) => {
      res.resume()
      res.once('end', () => resolve(res.statusCode ?? 0))
    })
    req.once('error', () => resolve(0))
    req.setTimeout(15_000, () => req.destroy())
    req.end()
  })
}

/** Random bearer tokens against the HTTP API, `width` at a time, from `address`; counts answers by status. */
export function tokenBruteForce (port: number, width: number, address = '127.0.0.9'): Attack & { statuses: Record<number, number> } {
  const statuses: Record<number, number> = {}
  const attack = loops('API token brute force', width, async () => {
    const status = await httpGet(port, '/api/fleet', randomBytes(16).toString('hex'), address)
    statuses[status] = (statuses[status] ?? 0) + 1
  })
  return Object.assign(attack, { statuses })
}
