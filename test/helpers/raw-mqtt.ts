/**
 * A TLS client that writes raw bytes and reports how the broker ended the
 * conversation: answered every PINGREQ (it read everything), closed the
 * connection, or neither within a bound (hung).
 */
import { connect as connectTcp } from 'node:net'
import { connect, createSecureContext, type SecureContext, type TLSSocket } from 'node:tls'
import mqttPacket, { type Packet } from 'mqtt-packet'
import { read, type TestFleet } from './fleet.ts'

export type RawEnd = 'answered' | 'closed-by-broker' | 'hung' | 'tls-error'

export interface RawOutcome { end: RawEnd, error?: string }

/** One context per identity, shared by every connection that uses it (saves memory and CPU per handshake). */
export function deviceContext (fleet: TestFleet, files: { cert: string, key: string }): SecureContext {
  return createSecureContext({ ca: read(fleet.paths.caCert), cert: read(files.cert), key: read(files.key) })
}

export interface RawScript {
  /** Written first. */
  opening: Buffer
  /**
   * Written in one go once the broker has answered the opening (its CONNACK),
   * as a real client waits: aedes holds at most 42 packets behind a pending
   * CONNECT and closes beyond that. Without a wait, written with the opening.
   */
  rest: Buffer
  awaitReply: boolean
}

/**
 * Connects, writes the script and waits for `pingresps` PINGRESPs (0: only
 * for the close), the broker's close, or `boundMs`.
 */
export function sendRaw (port: number, context: SecureContext, script: RawScript, pingresps: number, boundMs: number, localAddress = '127.0.0.1'): Promise<RawOutcome> {
  return new Promise((resolve) => {
    let settled = false
    let secured = false
    let seen = 0
    // Through a plain socket first: it is what lets a test pick its source address in 127.0.0.0/8.
    const raw = connectTcp({ host: '127.0.0.1', port, localAddress })
    const socket = connect({ socket: raw, secureContext: context, servername: 'localhost' })
    raw.on('error', (error) => { if (!secured) finish({ end: 'tls-error', error: error.message }) })
    const finish = (outcome: RawOutcome): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      socket.destroy()
      resolve(outcome)
    }
    const timer = setTimeout(() => finish({ end: secured ? 'hung' : 'tls-error', error: secured ? undefined : 'handshake not done in time' }), boundMs)
    const parser = mqttPacket.parser()
    let restWritten = !script.awaitReply
    parser.on('packet', (packet) => {
      if (!restWritten) { restWritten = true; socket.write(script.rest) }
      if (packet.cmd === 'pingresp' && pingresps > 0 && ++seen === pingresps) finish({ end: 'answered' })
    })
    parser.on('error', () => {}) // the broker's own bytes are not under test here
    socket.on('data', (chunk: Buffer) => parser.parse(chunk))
    socket.once('secureConnect', () => {
      secured = true
      socket.write(script.awaitReply ? script.opening : Buffer.concat([script.opening, script.rest]))
    })
    socket.on('error', (error) => { if (!secured) finish({ end: 'tls-error', error: error.message }) })
    socket.once('close', () => finish({ end: secured ? 'closed-by-broker' : 'tls-error', error: secured ? undefined : 'closed during the handshake' }))
  })
}

/**
 * Runs `count` jobs with at most `width` at once; `lane` (0…width-1) tells a
 * job which lane runs it, e.g. to give each lane its own device identity
 * (two connections with one client id take each other over [MQTT-3.1.4-2]).
 */
export async function pool<T> (count: number, width: number, job: (index: number, lane: number) => Promise<T>): Promise<T[]> {
  const results = new Array<T>(count)
  let next = 0
  const worker = async (lane: number): Promise<void> => {
    while (next < count) {
      const index = next++
      results[index] = await job(index, lane)
    }
  }
  await Promise.all(Array.from({ length: Math.min(width, count) }, (_, lane) => worker(lane)))
  return results
}

/**
 * A raw MQTT 3.1.1 session over mutual TLS as `deviceId`: what a device could
 * send, byte for byte. Resolves after the CONNACK (`connect: false`: once the
 * TLS session is up, nothing sent).
 */
export async function rawSession (port: number, fleet: TestFleet, deviceId: string, { connect: sendConnect = true } = {}): Promise<{ socket: TLSSocket, packets: Packet[], closed: Promise<void> }> {
  const files = fleet.device(deviceId)
  const socket = connect({ host: '127.0.0.1', port, ca: read(fleet.paths.caCert), cert: read(files.cert), key: read(files.key) })
  socket.on('error', () => {})
  const packets: Packet[] = []
  const parser = mqttPacket.parser()
  parser.on('packet', (packet) => packets.push(packet))
  socket.on('data', (chunk: Buffer) => parser.parse(chunk))
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()))
  await new Promise<void>((resolve, reject) => { socket.once('secureConnect', resolve); socket.once('error', reject) })
  if (!sendConnect) return { socket, packets, closed }
  socket.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: deviceId, keepalive: 30 }))
  await new Promise<void>((resolve, reject) => {
    parser.once('packet', (packet) => packet.cmd === 'connack' && packet.returnCode === 0 ? resolve() : reject(new Error(`no CONNACK 0: ${JSON.stringify(packet)}`)))
  })
  return { socket, packets, closed }
}
