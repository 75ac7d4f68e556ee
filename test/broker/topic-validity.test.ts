import mqttPacket, { type Packet } from 'mqtt-packet'
import { beforeAll, describe, expect, it } from 'vitest'
import { useFleetWithBroker } from '../helpers/broker.ts'
import { rawSession } from '../helpers/raw-mqtt.ts'

const ROOT = 'places/riverside/flood/flood-001'
const env = useFleetWithBroker()
beforeAll(() => env.fleet.pki.issueMany([{ deviceId: 'flood-001', kind: 'flood', site: 'riverside' }]))

/** A raw session as flood-001. */
const session = () => rawSession(env.broker.port, env.fleet, 'flood-001')

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
  const { socket, packets, closed } = await session()
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
    const { socket, packets } = await session()
    const publish = (topic: string, messageId: number) => mqttPacket.generate({ cmd: 'publish', topic, payload: Buffer.from('{}'), qos: 1, messageId, retain: false, dup: false })
    socket.write(Buffer.concat([publish(`${ROOT}/température`, 4), publish(`${ROOT}/a\uFFFDb`, 5), PINGREQ]))
    // PINGRESP may overtake the PUBACKs: each PUBACK waits for its message's commit.
    await new Promise<void>((resolve) => { const timer = setInterval(() => { if (packets.length >= 4 || socket.destroyed) { clearInterval(timer); resolve() } }, 10) })
    expect(packets.map((p) => p.cmd).sort()).toEqual(['connack', 'pingresp', 'puback', 'puback'])
    socket.destroy()
  })
})
