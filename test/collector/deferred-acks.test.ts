import { EventEmitter } from 'node:events'
import type { MqttClient } from 'mqtt'
import { describe, expect, it } from 'vitest'
import { installDeferredAcks } from '../../collector/deferred-acks.ts'

/** The two members of mqtt.js' client the hook touches; the end-to-end behaviour is tested in lossless.test.ts. */
function clientStub () {
  const sent: Array<{ cmd: string, messageId?: number }> = []
  const client = Object.assign(new EventEmitter(), {
    _sendPacket: (packet: { cmd: string, messageId?: number }, callback?: () => void) => { sent.push(packet); callback?.() },
  })
  return { client: client as unknown as MqttClient, sent }
}

/** The hook installed on a stub that has connected; `send` is mqtt.js' `_sendPacket` as the hook left it. */
function connectedAcks () {
  const { client, sent } = clientStub()
  const acks = installDeferredAcks(client)
  const send = (client as unknown as { _sendPacket: (p: object, cb: () => void) => void })._sendPacket
  client.emit('connect', { cmd: 'connack', sessionPresent: true })
  return { client, sent, acks, send }
}

describe('installDeferredAcks', () => {
  it('holds PUBACKs until released, lets mqtt.js continue at once, and passes other packets through', () => {
    const { sent, acks, send } = connectedAcks()
    let continued = 0
    send({ cmd: 'puback', messageId: 1 }, () => { continued++ })
    send({ cmd: 'puback', messageId: 2 }, () => { continued++ })
    send({ cmd: 'pingreq' }, () => { continued++ })
    expect(continued).toBe(3)
    expect(sent).toEqual([{ cmd: 'pingreq' }])
    acks.release([{ messageId: 1, connection: acks.connection }, { messageId: 2, connection: acks.connection }])
    expect(sent.map((p) => p.messageId)).toEqual([undefined, 1, 2])
    expect(acks.held).toBe(0)
  })

  it('never lets a ticket of an earlier connection release an ack of a later one that reuses the id', () => {
    const { client, sent, acks, send } = connectedAcks()
    send({ cmd: 'puback', messageId: 7 }, () => {})
    const oldTicket = { messageId: 7, connection: acks.connection }
    client.emit('connect', { cmd: 'connack', sessionPresent: true }) // reconnected: the broker redelivers, id 7 again
    send({ cmd: 'puback', messageId: 7 }, () => {})
    acks.release([oldTicket])
    expect(sent).toEqual([])
    acks.release([{ messageId: 7, connection: acks.connection }])
    expect(sent).toEqual([{ cmd: 'puback', messageId: 7 }])
  })

  it('two messages under one packet id (a broker breaking [MQTT-2.3.1-2]): each PUBACK waits for its own message', () => {
    const { sent, acks, send } = connectedAcks()
    send({ cmd: 'puback', messageId: 5 }, () => {})
    send({ cmd: 'puback', messageId: 5 }, () => {})
    expect(acks.held).toBe(2)
    acks.release([{ messageId: 5, connection: acks.connection }]) // the first is durable
    expect(sent).toEqual([{ cmd: 'puback', messageId: 5 }])
    expect(acks.held).toBe(1)
    acks.release([{ messageId: 5, connection: acks.connection }]) // then the second
    expect(sent).toEqual([{ cmd: 'puback', messageId: 5 }, { cmd: 'puback', messageId: 5 }])
    expect(acks.held).toBe(0)
    // Nothing is left over to acknowledge a later message under id 5 before it is durable.
    send({ cmd: 'puback', messageId: 5 }, () => {})
    expect(sent).toHaveLength(2)
  })

  it('sends at once the PUBACK of a message released while mqtt.js was still handling it', () => {
    const { sent, acks, send } = connectedAcks()
    acks.release([{ messageId: 9, connection: acks.connection }]) // the batch was committed inside handleMessage
    let continued = 0
    send({ cmd: 'puback', messageId: 9 }, () => { continued++ })
    expect(sent).toEqual([{ cmd: 'puback', messageId: 9 }])
    expect(continued).toBe(1)
    expect(acks.held).toBe(0)
  })

  it('voids tickets when the connection closes, so no ack is queued offline for the next one', () => {
    const { client, sent, acks, send } = connectedAcks()
    send({ cmd: 'puback', messageId: 3 }, () => {})
    const ticket = { messageId: 3, connection: acks.connection }
    client.emit('close') // mqtt.js would store a PUBACK sent now and flush it on the next connection
    acks.release([ticket])
    expect(sent).toEqual([])
  })
})
