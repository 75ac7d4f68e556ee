import mqttPacket from 'mqtt-packet'
import { beforeAll, describe, expect, it } from 'vitest'
import type { SecurityEvent } from '../../broker/index.ts'
import { useFleetWithBroker } from '../helpers/broker.ts'
import { rawSession } from '../helpers/raw-mqtt.ts'

const TOPIC = 'places/riverside/flood/flood-002/telemetry'
const env = useFleetWithBroker()
beforeAll(() => env.fleet.pki.issueMany([{ deviceId: 'flood-002', kind: 'flood', site: 'riverside' }]))

/**
 * Sends `wire` as flood-002 (after its CONNECT, or as the first bytes with
 * `connect: false`) with a PINGREQ behind it, and returns the events since,
 * disconnects aside, once the broker has closed the connection.
 */
async function eventsFor (wire: Buffer, options: { connect?: boolean } = {}): Promise<SecurityEvent[]> {
  const { socket, packets, closed } = await rawSession(env.broker.port, env.fleet, 'flood-002', options)
  const before = env.broker.events.length
  socket.write(Buffer.concat([wire, mqttPacket.generate({ cmd: 'pingreq' })]))
  await closed
  // A broker that read past the bad packet answered the PINGREQ.
  expect(packets.map((p) => p.cmd).filter((cmd) => cmd === 'pingresp')).toEqual([])
  // The broker reports before it closes; a second report would follow within moments.
  await new Promise((resolve) => setTimeout(resolve, 100))
  return env.broker.events.slice(before).filter((e) => e.type !== 'disconnect')
}

const connectPacket = (protocolVersion: number) => mqttPacket.generate({ cmd: 'connect', protocolId: protocolVersion === 3 ? 'MQIsdp' : 'MQTT', protocolVersion, clean: true, clientId: 'flood-002', keepalive: 30 } as never)

describe('packets that do not parse: MALFORMED_PACKET', () => {
  it.each([
    ['a Remaining Length of five bytes [MQTT-2.2.3]', [0x30, 0xff, 0xff, 0xff, 0xff, 0x7f], 'Invalid variable byte integer'],
    ['a SUBSCRIBE without its reserved flag bits [MQTT-3.8.1-1]', [0x80, 0x06, 0x00, 0x01, 0x00, 0x01, 0x61, 0x01], 'Invalid header flag bits'],
    ['a PUBLISH at QoS 3 [MQTT-3.3.1-4]', [0x36, 0x05, 0x00, 0x01, 0x61, 0x00, 0x01], 'Packet must not have both QoS bits set to 1'],
    ['a SUBSCRIBE whose filter has no QoS byte', [0x82, 0x06, 0x00, 0x01, 0x00, 0x02, 0x61, 0x62], 'Malformed Subscribe Payload'],
  ])('%s closes the connection with one protocol-violation naming the device', async (_name, bytes, reason) => {
    const events = await eventsFor(Buffer.from(bytes))
    expect(events).toHaveLength(1)
    expect(events[0]).toMatchObject({ type: 'protocol-violation', code: 'MALFORMED_PACKET', deviceId: 'flood-002', site: 'riverside' })
    expect(events[0]!.reason).toMatch(new RegExp(`^malformed MQTT packet \\(${reason}.*\\); connection closed$`))
  })

  it('reports a malformed first packet, before any CONNECT, by the certificate\'s identity', async () => {
    const events = await eventsFor(Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0x01]), { connect: false })
    expect(events).toEqual([expect.objectContaining({ type: 'protocol-violation', code: 'MALFORMED_PACKET', deviceId: 'flood-002' })])
  })

  it('reports a packet over maxPacketBytes as packet-too-large alone', async () => {
    const events = await eventsFor(mqttPacket.generate({ cmd: 'publish', topic: TOPIC, payload: Buffer.alloc(300_000), qos: 0, retain: false, dup: false }))
    expect(events.map((e) => e.type)).toEqual(['packet-too-large'])
  })
})

describe('packets that parse but break MQTT: PROTOCOL_VIOLATION', () => {
  it.each([
    ['a PUBLISH before CONNECT', false, mqttPacket.generate({ cmd: 'publish', topic: TOPIC, payload: '{}', qos: 0, retain: false, dup: false }), 'a PUBLISH before CONNECT [MQTT-3.1.0-1]'],
    ['a second CONNECT', true, connectPacket(4), 'a second CONNECT on one connection [MQTT-3.1.0-2]'],
    ['a PUBLISH to a topic with #', true, mqttPacket.generate({ cmd: 'publish', topic: 'places/riverside/flood/flood-002/#', payload: '{}', qos: 1, messageId: 1, retain: false, dup: false }), 'a wildcard in a PUBLISH topic [MQTT-3.3.2-2]'],
    ['a PUBLISH to a topic with +', true, mqttPacket.generate({ cmd: 'publish', topic: 'places/riverside/flood/+/telemetry', payload: '{}', qos: 0, retain: false, dup: false }), 'a wildcard in a PUBLISH topic [MQTT-3.3.2-2]'],
    ['a PUBLISH with an empty topic', true, Buffer.from([0x30, 0x04, 0x00, 0x00, 0x7b, 0x7d]), 'a PUBLISH with an empty topic [MQTT-4.7.3-1]'],
    ['a PUBLISH to a topic of 105 levels', true, mqttPacket.generate({ cmd: 'publish', topic: `places/riverside/flood/flood-002/${'a/'.repeat(100)}x`, payload: '{}', qos: 0, retain: false, dup: false }), 'a topic deeper than the broker takes (aedes\' maxTopicLevels, 100 levels)'],
    ['a SUBSCRIBE with no filter', true, Buffer.from([0x82, 0x02, 0x00, 0x01]), 'a SUBSCRIBE with no topic filter [MQTT-3.8.3-3]'],
    ['an UNSUBSCRIBE with no filter', true, Buffer.from([0xa2, 0x02, 0x00, 0x01]), 'an UNSUBSCRIBE with no topic filter [MQTT-3.10.3-2]'],
    ['a CONNACK from the client', true, mqttPacket.generate({ cmd: 'connack', returnCode: 0, sessionPresent: false }), 'a CONNACK from a client, which only a server sends'],
    ['a SUBACK from the client', true, mqttPacket.generate({ cmd: 'suback', messageId: 1, granted: [0] }), 'a SUBACK from a client, which only a server sends'],
  ])('%s closes the connection with one protocol-violation naming the device', async (_name, connect, wire, reason) => {
    const events = await eventsFor(wire, { connect })
    expect(events).toEqual([expect.objectContaining({ type: 'protocol-violation', code: 'PROTOCOL_VIOLATION', deviceId: 'flood-002', reason: `${reason}; connection closed` })])
  })

  it('leaves a conforming session alone: subscriptions, QoS 2, retained, PINGREQ and DISCONNECT raise no violation', async () => {
    const { socket, packets, closed } = await rawSession(env.broker.port, env.fleet, 'flood-002')
    const before = env.broker.events.length
    socket.write(Buffer.concat([
      mqttPacket.generate({ cmd: 'subscribe', messageId: 2, subscriptions: [{ topic: 'places/riverside/flood/flood-002/cmd', qos: 1 }] }),
      mqttPacket.generate({ cmd: 'unsubscribe', messageId: 3, unsubscriptions: ['places/riverside/flood/flood-002/cmd'] }),
      mqttPacket.generate({ cmd: 'publish', topic: TOPIC, payload: '{}', qos: 2, messageId: 4, retain: false, dup: false }),
      mqttPacket.generate({ cmd: 'pingreq' }),
    ]))
    await new Promise<void>((resolve) => { const timer = setInterval(() => { if (packets.some((p) => p.cmd === 'pingresp')) { clearInterval(timer); resolve() } }, 10) })
    socket.end(mqttPacket.generate({ cmd: 'disconnect' }))
    await closed
    expect(env.broker.events.slice(before).filter((e) => e.type === 'protocol-violation')).toEqual([])
  })
})

describe('a CONNECT of an MQTT version the broker does not speak', () => {
  it('is refused with CONNACK 1 and reported as auth-failed, naming the device', async () => {
    const { socket, packets, closed } = await rawSession(env.broker.port, env.fleet, 'flood-002', { connect: false })
    const before = env.broker.events.length
    socket.write(connectPacket(5))
    await closed
    expect(packets).toEqual([expect.objectContaining({ cmd: 'connack', returnCode: 1 })])
    const event = await env.broker.waitForEvent((e) => e.type === 'auth-failed' && env.broker.events.indexOf(e) >= before)
    expect(event).toMatchObject({ code: 'UNSUPPORTED_PROTOCOL_VERSION', deviceId: 'flood-002' })
  })

  it('serves MQTT 3.1 as it does 3.1.1', async () => {
    const { socket, packets } = await rawSession(env.broker.port, env.fleet, 'flood-002', { connect: false })
    socket.write(connectPacket(3))
    await new Promise<void>((resolve) => { const timer = setInterval(() => { if (packets.length > 0) { clearInterval(timer); resolve() } }, 10) })
    expect(packets).toEqual([expect.objectContaining({ cmd: 'connack', returnCode: 0 })])
    socket.destroy()
  })
})
