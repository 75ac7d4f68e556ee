import type { MqttClient } from 'mqtt'

type SendPacket = (packet: { cmd: string, messageId?: number }, callback?: (error?: Error) => void, ...rest: unknown[]) => void

/** A received message's acknowledgement handle: its id on the connection it arrived on. */
export interface AckTicket { messageId: number, connection: number }

export interface DeferredAcks {
  /** The current connection; a ticket from an earlier one is void (the broker redelivers). */
  readonly connection: number
  /**
   * Sends the held PUBACKs of these tickets, in the order they were received.
   * A ticket released before mqtt.js has handed over its PUBACK (the message
   * that completes a batch is committed inside its own handleMessage) is
   * remembered, and its PUBACK goes out the moment mqtt.js sends it.
   */
  release: (tickets: AckTicket[]) => void
  /** PUBACKs held, not yet sent. */
  readonly held: number
}

/**
 * Holds the collector's PUBACKs until PlaceGuard says the message is
 * durable, without stalling the client.
 *
 * mqtt.js handles incoming packets one at a time and waits for
 * `handleMessage` before reading the next, so acknowledging only after a
 * disk commit would cap the collector at one commit per message
 * (≈ 500 msg/s here). Instead handleMessage returns at once, and the
 * PUBACK packet mqtt.js then sends is parked here (mqtt.js' private
 * `_sendPacket`; its continuation is called so the next packet is read)
 * until the spool has committed the whole batch. [MQTT-4.6.0-2]: PUBACKs
 * are released in the order the PUBLISHes arrived. Until its PUBACK, the
 * broker keeps the message in the collector's persistent session, so a
 * collector killed at any moment loses nothing.
 */
export function installDeferredAcks (client: MqttClient): DeferredAcks {
  const internals = client as unknown as { _sendPacket: SendPacket }
  const send = internals._sendPacket.bind(client)
  // By packet id, in arrival order: a broker that breaks [MQTT-2.3.1-2] and
  // sends a second message under an id still unacknowledged gets a PUBACK
  // for each, each once its own message is durable (one entry per id would
  // let the second release the first's, or acknowledge the second early).
  const parked = new Map<number, Array<() => void>>()
  // Released while their message was still inside handleMessage; at most the
  // one message being handled, so this map stays tiny.
  const releasedEarly = new Map<number, number>()
  let held = 0
  let connection = 0
  internals._sendPacket = (packet, callback, ...rest) => {
    if (packet.cmd !== 'puback' || packet.messageId === undefined) return send(packet, callback, ...rest)
    const messageId = packet.messageId
    const early = releasedEarly.get(messageId)
    if (early !== undefined) {
      if (early > 1) releasedEarly.set(messageId, early - 1)
      else releasedEarly.delete(messageId)
      return send(packet, callback, ...rest)
    }
    const queue = parked.get(messageId)
    const sendAck = (): void => send(packet, undefined, ...rest)
    if (queue) queue.push(sendAck)
    else parked.set(messageId, [sendAck])
    held++
    callback?.() // let mqtt.js read the next packet now
  }
  // A connection's parked acks die with it: the broker redelivers those
  // messages, possibly under the same ids, so a ticket of the old connection
  // must never release an ack of the new one. The count moves on at `close`,
  // not only at `connect`: mqtt.js queues a packet sent while offline and
  // flushes it on the next connection, where an old id would acknowledge
  // (and so lose) a different message [MQTT-4.4.0-1].
  const forget = (): void => {
    parked.clear()
    releasedEarly.clear()
    held = 0
    connection++
  }
  client.on('close', forget)
  client.on('connect', forget)
  return {
    release (tickets) {
      for (const { messageId, connection: from } of tickets) {
        if (from !== connection) continue
        const queue = parked.get(messageId)
        const sendAck = queue?.shift()
        if (sendAck) {
          if (queue!.length === 0) parked.delete(messageId)
          held--
          sendAck()
        } else {
          releasedEarly.set(messageId, (releasedEarly.get(messageId) ?? 0) + 1)
        }
      }
    },
    get connection () { return connection },
    get held () { return held },
  }
}
