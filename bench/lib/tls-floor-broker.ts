/**
 * The floor under any broker written on Node: a TLS server on the fleet's
 * certificates (mutual TLS, the same CA check) that speaks just enough MQTT
 * 3.1.1 for the simulator and a subscriber — CONNACK, PUBACK, SUBACK,
 * PINGRESP — and copies every PUBLISH, bytes as received, to every client
 * that subscribed. No MQTT library, no topic matching, no access control,
 * no session, no store: what a message costs here is what Node's TLS
 * sockets and event loop cost, before any broker work. A benchmark runs it
 * as a third "broker" beside PlaceGuard and mosquitto, so the part of
 * PlaceGuard's cost that no broker on Node can avoid is measured, not
 * guessed.
 *
 *   node bench/lib/tls-floor-broker.ts <port> <ca.pem> <server-cert.pem> <server-key.pem>
 *
 * Not a broker: never point a device at it.
 */
import { readFileSync } from 'node:fs'
import { createServer, type TLSSocket } from 'node:tls'

const [port, caFile, certFile, keyFile] = process.argv.slice(2)
if (!port || !caFile || !certFile || !keyFile) {
  process.stderr.write('usage: tls-floor-broker.ts <port> <ca.pem> <server-cert.pem> <server-key.pem>\n')
  process.exit(2)
}

const CONNACK = Buffer.from([0x20, 0x02, 0x00, 0x00])
const PINGRESP = Buffer.from([0xd0, 0x00])
const subscribers = new Set<TLSSocket>()

const server = createServer({
  ca: readFileSync(caFile), cert: readFileSync(certFile), key: readFileSync(keyFile),
  requestCert: true, rejectUnauthorized: true,
}, (socket) => {
  let pending: Buffer = Buffer.alloc(0)
  socket.on('data', (chunk: Buffer) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk])
    let offset = 0
    for (;;) {
      const packet = nextPacket(pending, offset)
      if (!packet) break
      answer(socket, pending, offset, packet.bodyStart, packet.end)
      offset = packet.end
    }
    pending = offset === pending.length ? Buffer.alloc(0) : pending.subarray(offset)
  })
  socket.on('error', () => socket.destroy())
  socket.on('close', () => subscribers.delete(socket))
})
server.listen(Number(port), '127.0.0.1')
process.on('SIGTERM', () => { server.close(); for (const socket of subscribers) socket.destroy(); process.exit(0) })

/** A whole packet at `offset`: where its body starts and where it ends; undefined if not all here yet. */
function nextPacket (buffer: Buffer, offset: number): { bodyStart: number, end: number } | undefined {
  let length = 0
  let multiplier = 1
  let at = offset + 1
  for (;;) {
    if (at >= buffer.length) return undefined
    const byte = buffer[at++]!
    length += (byte & 0x7f) * multiplier
    if ((byte & 0x80) === 0) break
    multiplier *= 128
  }
  return at + length <= buffer.length ? { bodyStart: at, end: at + length } : undefined
}

function answer (socket: TLSSocket, buffer: Buffer, start: number, bodyStart: number, end: number): void {
  const type = buffer[start]! >> 4
  switch (type) {
    case 1: socket.write(CONNACK); return
    case 3: {
      const qos = (buffer[start]! >> 1) & 3
      const copy = buffer.subarray(start, end)
      for (const subscriber of subscribers) subscriber.write(copy)
      if (qos > 0) {
        const idAt = bodyStart + 2 + buffer.readUInt16BE(bodyStart)
        socket.write(Buffer.from([0x40, 0x02, buffer[idAt]!, buffer[idAt + 1]!]))
      }
      return
    }
    case 8: {
      // One granted QoS 1 per topic filter (each: 2-byte length, filter, 1 options byte).
      let topics = 0
      for (let at = bodyStart + 2; at < end; at += 2 + buffer.readUInt16BE(at) + 1) topics++
      socket.write(Buffer.from([0x90, 2 + topics, buffer[bodyStart]!, buffer[bodyStart + 1]!, ...new Array<number>(topics).fill(1)]))
      subscribers.add(socket)
      return
    }
    case 12: socket.write(PINGRESP); return
    case 14: socket.end(); return
    default: // PUBACK from a subscriber and the rest: nothing to answer.
  }
}
