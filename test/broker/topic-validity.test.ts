import { connect as tlsConnect, type TLSSocket } from 'node:tls'
import mqttPacket, { type Packet } from 'mqtt-packet'
import { beforeAll, describe, expect, it } from 'vitest'
import { useFleetWithBroker } from '../helpers/broker.ts'
import { read } from '../helpers/fleet.ts'

const ROOT = 'places/riverside/flood/flood-001'
const env = useFleetWithBroker()
beforeAll(() => env.fleet.pki.issueMany([{ deviceId: 'flood-001', kind: 'flood', site: 'riverside' }]))

/** A raw MQTT 3.1.1 session over mutual TLS: what a device could send, byte for byte (`connect: false`: the TLS session alone). */
async function rawSession ({ connect = true } = {}): Promise<{ socket: TLSSocket, packets: Packet[], closed: Promise<void> }> {
  const { fleet, broker } = env
  const files = fleet.device('flood-001')
  const socket = tlsConnect({ host: '127.0.0.1', port: broker.port, ca: read(fleet.paths.caCert), cert: read(files.cert), key: read(files.key) })
  socket.on('error', () => {})
  const packets: Packet[] = []
  const parser = mqttPacket.parser()
  parser.on('packet', (packet) => packets.push(packet))
  socket.on('data', (chunk: Buffer) => parser.parse(chunk))
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()))
  await new Promise<void>((resolve, reject) => { socket.once('secureConnect', resolve); socket.once('error', reject) })
  if (!connect) return { socket, packets, closed }
  socket.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'flood-001', keepalive: 30 }))
  await new Promise<void>((resolve, reject) => {
    parser.once('packet', (packet) => packet.cmd === 'connack' && packet.returnCode === 0 ? resolve() : reject(new Error(`no CONNACK 0: ${JSON.stringify(packet)}`)))
  })
  return { socket, packets, closed }
}

/** Encodes `packet` with the ASCII `placeholder` in its topic, then puts `bytes` (same length) in its place. */
function patched (packet: Packet, placeholder: string, bytes: number[]): Buffer {
  const encoded = mqttPacket.generate(packet)
  const at = encoded.indexOf(placeholder)
  expect(at).toBeGreaterThan(0)
  expect(bytes).toHaveLength(placeholder.length)
  Buffer.from(bytes).copy(encoded, at)
  return encoded
}

const PINGREQ = mqttPacket.generate({ cmd: 'pingreq' })

async function expectClosedFor (wire: Buffer, escaped: string): Promise<void> {
  const { socket, packets, closed } = await rawSession()
  const before = env.broker.events.length
  // A PINGREQ behind it: a broker that accepted the bad packet answers it (and a QoS 1 PUBLISH with PUBACK).
  socket.write(Buffer.concat([wire, PINGREQ]))
  await Promise.race([closed, new Promise<void>((resolve) => {
    const timer = setInterval(() => { if (packets.some((p) => p.cmd === 'pingresp')) { clearInterval(timer); resolve() } }, 10)
    void closed.then(() => clearInterval(timer))
  })])
  expect(packets.map((p) => p.cmd)).toEqual(['connack'])
  await closed
  const event = await env.broker.waitForEvent((e) => e.type === 'protocol-violation' && env.broker.events.indexOf(e) >= before)
  expect(event).toMatchObject({ deviceId: 'flood-001', code: 'MALFORMED_UTF8' })
  expect(event.reason).toContain(escaped)
  // Reported once, as what it is: the parse it failed is not reported again as a malformed packet.
  expect(env.broker.events.slice(before).filter((e) => e.type === 'protocol-violation')).toHaveLength(1)
  socket.destroy()
}

describe('UTF-8 strings in topics [MQTT-1.5.3]', () => {
  it('a PUBLISH whose topic holds ill-formed UTF-8 closes the connection, with the bytes escaped in the event', async () => {
    await expectClosedFor(patched({ cmd: 'publish', topic: `${ROOT}/ZZ`, payload: Buffer.from('{}'), qos: 1, messageId: 1, retain: false, dup: false }, 'ZZ', [0xff, 0xfe]),
      `${ROOT}/\\xff\\xfe`)
  })

  it('a PUBLISH whose topic holds U+0000 closes the connection', async () => {
    await expectClosedFor(patched({ cmd: 'publish', topic: `${ROOT}/aZb`, payload: Buffer.from('{}'), qos: 0, retain: false, dup: false }, 'aZb', [0x61, 0x00, 0x62]),
      `${ROOT}/a\\x00b`)
  })

  it('a PUBLISH whose topic holds a UTF-16 surrogate (not UTF-8) closes the connection', async () => {
    await expectClosedFor(patched({ cmd: 'publish', topic: `${ROOT}/ZZZ`, payload: Buffer.from('{}'), qos: 1, messageId: 2, retain: false, dup: false }, 'ZZZ', [0xed, 0xa0, 0x80]),
      `${ROOT}/\\xed\\xa0\\x80`)
  })

  it('a SUBSCRIBE whose filter holds ill-formed UTF-8 closes the connection', async () => {
    await expectClosedFor(patched({ cmd: 'subscribe', messageId: 3, subscriptions: [{ topic: `${ROOT}/ZZ`, qos: 1 }] }, 'ZZ', [0xc0, 0xaf]),
      `${ROOT}/\\xc0\\xaf`)
  })

  it('well-formed UTF-8 beyond ASCII is accepted, U+FFFD itself included', async () => {
    const { socket, packets } = await rawSession()
    const publish = (topic: string, messageId: number) => mqttPacket.generate({ cmd: 'publish', topic, payload: Buffer.from('{}'), qos: 1, messageId, retain: false, dup: false })
    socket.write(Buffer.concat([publish(`${ROOT}/température`, 4), publish(`${ROOT}/a\uFFFDb`, 5), PINGREQ]))
    // PINGRESP may overtake the PUBACKs: each PUBACK waits for its message's commit.
    await new Promise<void>((resolve) => { const timer = setInterval(() => { if (packets.length >= 4 || socket.destroyed) { clearInterval(timer); resolve() } }, 10) })
    expect(packets.map((p) => p.cmd).sort()).toEqual(['connack', 'pingresp', 'puback', 'puback'])
    socket.destroy()
  })
})

describe('packets that do not parse', () => {
  /** Sends `wire` (after CONNECT, or as the first bytes with `connect: false`) and returns the events since, once the broker has closed the connection. */
  async function eventsFor (wire: Buffer, options: { connect?: boolean } = {}) {
    const { socket, closed } = await rawSession(options)
    const before = env.broker.events.length
    socket.write(Buffer.concat([wire, PINGREQ]))
    await closed
    // The broker reports before it closes; a second report would follow within moments.
    await new Promise((resolve) => setTimeout(resolve, 100))
    return env.broker.events.slice(before).filter((e) => e.type !== 'disconnect')
  }

  it.each([
    ['a Remaining Length of five bytes [MQTT-2.2.3]', [0x30, 0xff, 0xff, 0xff, 0xff, 0x7f], 'Invalid variable byte integer'],
    ['a SUBSCRIBE without its reserved flag bits [MQTT-3.8.1-1]', [0x80, 0x06, 0x00, 0x01, 0x00, 0x01, 0x61, 0x01], 'Invalid header flag bits'],
    ['a PUBLISH at QoS 3 [MQTT-3.3.1-4]', [0x36, 0x05, 0x00, 0x01, 0x61, 0x00, 0x01], 'Packet must not have both QoS bits set to 1'],
    ['a SUBSCRIBE whose filter has no QoS byte', [0x82, 0x06, 0x00, 0x01, 0x00, 0x02, 0x61, 0x62], 'Malformed Subscribe Payload'],
  ])('%s closes the connection with one protocol-violation naming the device', async (_name, bytes, reason) => {
    const events = await eventsFor(Buffer.from(bytes))
    expect(events).toHaveLength(1)
    expect(events[0]).toMatchObject({ type: 'protocol-violation', code: 'MALFORMED_PACKET', deviceId: 'flood-001' })
    expect(events[0]!.reason).toMatch(new RegExp(`^malformed MQTT packet \\(${reason}.*\\); connection closed$`))
  })

  it('reports a malformed first packet, before any CONNECT, by the certificate\'s identity', async () => {
    const events = await eventsFor(Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0x01]), { connect: false })
    expect(events).toEqual([expect.objectContaining({ type: 'protocol-violation', code: 'MALFORMED_PACKET', deviceId: 'flood-001' })])
  })

  it('reports a packet over maxPacketBytes as packet-too-large alone', async () => {
    const events = await eventsFor(mqttPacket.generate({ cmd: 'publish', topic: `${ROOT}/big`, payload: Buffer.alloc(300_000), qos: 0, retain: false, dup: false }))
    expect(events.map((e) => e.type)).toEqual(['packet-too-large'])
  })
})
