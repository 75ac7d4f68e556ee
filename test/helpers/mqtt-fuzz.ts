/**
 * MQTT 3.1.1 packets for fuzzing a broker: valid encodings from mqtt-packet
 * with field values from fast-check arbitraries, and grammar-level mutations
 * of them. Every mutation says whether the spec obliges the server to close
 * the connection when it meets it (`mustClose`, with the clause), or only
 * that the server must survive it (bit flips, length lies that swallow the
 * following packets).
 *
 * A connection's script is drawn with `fc.sample(…, { seed, numRuns: 1 })`
 * per connection index, so "seed S, connection i" replays one exactly.
 */
import fc from 'fast-check'
import mqttPacket, { type Packet } from 'mqtt-packet'

export interface FuzzPacket {
  bytes: Buffer
  /** What was generated or done to it, for failure messages. */
  label: string
  /** The spec clause that obliges the broker to close on this packet, if any. */
  mustClose?: string
}

export interface FuzzScript {
  /** Bytes in the order sent; the first is the opening (CONNECT, or not). */
  packets: FuzzPacket[]
  /** Keep-alive of the opening CONNECT, seconds (0: no CONNECT opened the connection). */
  keepaliveSec: number
}

export interface FuzzTarget {
  deviceId: string
  /** The device's own telemetry topic, the one its ACL allows. */
  topic: string
}

const encode = (packet: Packet): Buffer => mqttPacket.generate(packet)

// --- field arbitraries -------------------------------------------------------

const messageId = fc.integer({ min: 1, max: 65_535 })
const qos = fc.constantFrom(0, 1, 2) as fc.Arbitrary<0 | 1 | 2>
/** Printable and non-ASCII text, wildcards and separators: what a topic parser meets. */
const text = fc.string({ unit: fc.oneof(fc.constantFrom('/', '+', '#', '$', ' ', 'a', 'é', '😀'), fc.string({ unit: 'binary', minLength: 1, maxLength: 1 })), maxLength: 40 })

function topicFor (target: FuzzTarget): fc.Arbitrary<string> {
  // Almost always the device's own topic: a publish outside it closes the
  // connection (ACL), and the packets after it would never be read.
  return fc.oneof({ arbitrary: fc.constant(target.topic), weight: 400 }, { arbitrary: text.filter((t) => t.length > 0), weight: 1 })
}

function filterFor (target: FuzzTarget): fc.Arbitrary<string> {
  const own = target.topic.replace(/\/telemetry$/, '')
  // Well-formed filters outside the ACL are refused in the SUBACK and the
  // connection goes on; ill-formed ones close it, so they stay rare.
  const level = fc.oneof(fc.constant('+'), fc.string({ unit: fc.constantFrom('a', 'b', '-', '$', 'é', ' '), minLength: 1, maxLength: 8 }))
  const wellFormed = fc.tuple(fc.array(level, { minLength: 1, maxLength: 6 }), fc.boolean()).map(([levels, hash]) => [...levels, ...(hash ? ['#'] : [])].join('/'))
  return fc.oneof(
    { arbitrary: fc.constantFrom(target.topic, `${own}/#`, `${own}/+`), weight: 600 },
    { arbitrary: wellFormed, weight: 200 },
    { arbitrary: text.filter((t) => t.length > 0), weight: 1 },
  )
}

// --- valid packets -------------------------------------------------------------

export function connectPacket (clientId: string, keepalive: number, clean = true): Packet {
  return { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean, clientId, keepalive }
}

function connectArb (target: FuzzTarget): fc.Arbitrary<Packet> {
  return fc.record({
    clientId: fc.oneof(fc.constant(target.deviceId), fc.constant(''), text),
    keepalive: fc.integer({ min: 0, max: 65_535 }),
    clean: fc.boolean(),
    will: fc.option(fc.record({ topic: topicFor(target), payload: fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a)), qos, retain: fc.boolean() }), { nil: undefined }),
    username: fc.option(text, { nil: undefined }),
  }).map(({ clientId, keepalive, clean, will, username }) => ({
    // mqtt-packet will not encode an empty id with a persistent session.
    ...connectPacket(clientId, keepalive, clean || clientId === ''), ...(will ? { will } : {}), ...(username !== undefined ? { username, password: Buffer.from('x') } : {}),
  }) as Packet)
}

function validArb (target: FuzzTarget): fc.Arbitrary<Packet> {
  const publish = fc.record({ topic: topicFor(target), payload: fc.uint8Array({ maxLength: 256 }), qos, retain: fc.boolean(), dup: fc.boolean(), messageId })
    .map(({ topic, payload, qos: q, retain, dup, messageId: id }) =>
      ({ cmd: 'publish', topic, payload: Buffer.from(payload), qos: q, retain, dup: q > 0 && dup, ...(q > 0 ? { messageId: id } : {}) }) as Packet)
  const ack = fc.record({ cmd: fc.constantFrom('puback', 'pubrec', 'pubrel', 'pubcomp'), messageId }).map((p) => p as Packet)
  const subscribe = fc.record({ messageId, subscriptions: fc.array(fc.record({ topic: filterFor(target), qos }), { minLength: 1, maxLength: 8 }) })
    .map((p) => ({ cmd: 'subscribe', ...p }) as Packet)
  const unsubscribe = fc.record({ messageId, unsubscriptions: fc.array(filterFor(target), { minLength: 1, maxLength: 8 }) })
    .map((p) => ({ cmd: 'unsubscribe', ...p }) as Packet)
  return fc.oneof(
    { arbitrary: publish, weight: 10 },
    { arbitrary: ack, weight: 4 },
    { arbitrary: subscribe, weight: 2 },
    { arbitrary: unsubscribe, weight: 2 },
    { arbitrary: fc.constant({ cmd: 'pingreq' } as Packet), weight: 1 },
  )
}

// --- byte surgery ------------------------------------------------------------

/** The MQTT variable byte integer (Remaining Length), 1–4 bytes [MQTT-2.2.3]. */
export function varint (value: number): Buffer {
  const out: number[] = []
  do {
    let byte = value % 128
    value = Math.floor(value / 128)
    if (value > 0) byte |= 0x80
    out.push(byte)
  } while (value > 0 && out.length < 8)
  return Buffer.from(out)
}

interface Split { first: number, body: Buffer }

function split (bytes: Buffer): Split {
  let offset = 1
  while (bytes[offset]! & 0x80) offset++
  return { first: bytes[0]!, body: bytes.subarray(offset + 1) }
}

const join = (first: number, length: Buffer, body: Buffer): Buffer => Buffer.concat([Buffer.from([first]), length, body])

/** Offset in the body of the first length-prefixed string: the topic or filter, or the client id. */
function firstStringOffset (cmd: string): number | undefined {
  if (cmd === 'publish') return 0
  if (cmd === 'subscribe' || cmd === 'unsubscribe') return 2
  if (cmd === 'connect') return 10 // protocol name (6) + level (1) + flags (1) + keep-alive (2)
  return undefined
}

const MUTATIONS = [
  'reserved-type', 'wrong-flags', 'overlong-varint', 'string-past-end', 'truncated-string', 'bad-utf8',
  'huge-topic', 'oversize', 'length-longer', 'length-shorter', 'bit-flip', 'second-connect', 'server-only-type',
] as const
export type Mutation = typeof MUTATIONS[number]

/** Ill-formed UTF-8 and the null character, each forbidden in an MQTT string [MQTT-1.5.3-1], [MQTT-1.5.3-2]. */
const BAD_UTF8 = [[0xff], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0x80], [0x00], [0xf8, 0x88, 0x80, 0x80]]

interface MutationChoice { kind: Mutation, a: number, b: number, bits: number[] }

function mutate (packet: Packet, choice: MutationChoice, target: FuzzTarget): FuzzPacket {
  const bytes = encode(packet)
  const { first, body } = split(bytes)
  const label = `${choice.kind} of ${packet.cmd}`
  switch (choice.kind) {
    case 'reserved-type':
      // Types 0 and 15 are reserved/forbidden in 3.1.1 (§2.2.1, Table 2.1).
      return { bytes: join((choice.a % 2 === 0 ? 0x00 : 0xf0) | (first & 0x0f), varint(body.length), body), label, mustClose: 'MQTT 3.1.1 §2.2.1 reserved packet type' }
    case 'wrong-flags': {
      if (packet.cmd === 'publish') {
        return { bytes: join(first | 0x06, varint(body.length), body), label: `${label} (QoS 3)`, mustClose: '[MQTT-3.3.1-4] QoS bits both set' }
      }
      const required = packet.cmd === 'pubrel' || packet.cmd === 'subscribe' || packet.cmd === 'unsubscribe' ? 0x2 : 0x0
      const flags = ((choice.a % 15) + 1 + required) % 16 // never the required value
      return { bytes: join((first & 0xf0) | flags, varint(body.length), body), label: `${label} (flags ${flags})`, mustClose: '[MQTT-2.2.2-2] invalid fixed-header flags' }
    }
    case 'overlong-varint': {
      // Five bytes: the fourth continues, which the spec forbids (§2.2.3, at most four).
      const length = Buffer.from([0x80 | (body.length & 0x7f), 0x80 | ((body.length >> 7) & 0x7f), 0x80, 0x80, 0x00])
      return { bytes: join(first, length, body), label, mustClose: 'MQTT 3.1.1 §2.2.3 remaining length over four bytes' }
    }
    case 'string-past-end': {
      const at = firstStringOffset(packet.cmd)
      if (at === undefined || body.length < at + 2) return mutate(packet, { ...choice, kind: 'bit-flip' }, target)
      const copy = Buffer.from(body)
      copy.writeUInt16BE(Math.min(65_535, copy.length - at - 2 + 1 + (choice.a % 60_000)), at)
      return { bytes: join(first, varint(copy.length), copy), label, mustClose: 'MQTT 3.1.1 §1.5.3 string length prefix past the packet end' }
    }
    case 'truncated-string': {
      const at = firstStringOffset(packet.cmd)
      if (at === undefined || body.length < at + 3) return mutate(packet, { ...choice, kind: 'bit-flip' }, target)
      const length = body.readUInt16BE(at)
      if (length < 1) return mutate(packet, { ...choice, kind: 'bit-flip' }, target)
      const cut = body.subarray(0, at + 2 + (choice.a % length)) // the string ends early, with the packet
      return { bytes: join(first, varint(cut.length), cut), label, mustClose: 'MQTT 3.1.1 §1.5.3 string longer than its packet' }
    }
    case 'bad-utf8': {
      const topic = packet.cmd === 'subscribe' || packet.cmd === 'unsubscribe' ? 'filter' : 'topic'
      const cmd = packet.cmd === 'subscribe' || packet.cmd === 'unsubscribe' ? packet.cmd : 'publish'
      const bad = Buffer.from(BAD_UTF8[choice.a % BAD_UTF8.length]!)
      const good = Buffer.from(target.topic)
      const pos = choice.b % good.length
      const name = Buffer.concat([good.subarray(0, pos), bad, good.subarray(pos)])
      const prefix = Buffer.alloc(2)
      prefix.writeUInt16BE(name.length)
      const head = cmd === 'publish' ? Buffer.alloc(0) : Buffer.from([0x00, 0x01])
      const tail = cmd === 'publish' ? Buffer.from('{"x":1}') : cmd === 'subscribe' ? Buffer.from([0x01]) : Buffer.alloc(0)
      const built = Buffer.concat([head, prefix, name, tail])
      const firstByte = cmd === 'publish' ? 0x30 : cmd === 'subscribe' ? 0x82 : 0xa2
      return { bytes: join(firstByte, varint(built.length), built), label: `bad-utf8 ${bad.toString('hex')} in a ${cmd} ${topic}`, mustClose: '[MQTT-1.5.3-1]/[MQTT-1.5.3-2] ill-formed UTF-8 or U+0000 in a string' }
    }
    case 'huge-topic': {
      // A well-formed PUBLISH whose topic is 65,535 bytes, thousands of levels deep:
      // outside any device's ACL, so PlaceGuard closes [MQTT-3.3.5-2].
      const topic = `${target.topic}/${'a/'.repeat(32_000)}`.slice(0, 65_535)
      return { bytes: encode({ cmd: 'publish', topic, payload: Buffer.from('1'), qos: 0, retain: false, dup: false }), label, mustClose: 'PlaceGuard ACL: publish outside the own topic closes [MQTT-3.3.5-2]' }
    }
    case 'oversize': {
      // Announces ~1 MB and sends a little: the size limit acts on the header alone.
      const announced = 1_000_000 + (choice.a % 100_000)
      return { bytes: join(first, varint(announced), body), label: `${label} announcing ${announced} bytes`, mustClose: 'PlaceGuard maxPacketBytes' }
    }
    case 'length-longer':
      // Swallows what follows; the broker must survive and close at keep-alive at worst.
      return { bytes: join(first, varint(body.length + 1 + (choice.a % 2_000)), body), label }
    case 'length-shorter': {
      const length = body.length === 0 ? 0 : choice.a % body.length
      return { bytes: join(first, varint(length), body), label }
    }
    case 'bit-flip': {
      const copy = Buffer.from(bytes)
      for (const bit of choice.bits) copy[bit % copy.length]! ^= 1 << (bit % 8)
      return { bytes: copy, label: `${label} (bits ${choice.bits.map((b) => b % (copy.length * 8)).join(',')})` }
    }
    case 'second-connect':
      return { bytes: encode(connectPacket(target.deviceId, 2)), label, mustClose: '[MQTT-3.1.0-2] second CONNECT' }
    case 'server-only-type': {
      const packets: Packet[] = [
        { cmd: 'connack', returnCode: 0, sessionPresent: false }, { cmd: 'suback', messageId: 1, granted: [0] },
        { cmd: 'unsuback', messageId: 1 } as Packet, { cmd: 'pingresp' },
      ]
      const chosen = packets[choice.a % packets.length]!
      return { bytes: encode(chosen), label: `${chosen.cmd} from a client`, mustClose: 'a server-to-client packet from a client (MQTT 3.1.1 Table 2.1 direction)' }
    }
  }
}

const mutationArb = fc.record({
  kind: fc.constantFrom(...MUTATIONS),
  a: fc.nat(),
  b: fc.nat(),
  bits: fc.array(fc.nat(), { minLength: 1, maxLength: 8 }),
})

export type Opening = 'connect' | 'fuzzed-connect' | 'none' | 'mqtt5-huge-properties'

/**
 * One connection: an opening, `count` packets of which at most one is
 * mutated, then a PINGREQ that shows the broker read everything (the
 * answer is a PINGRESP, or the broker has closed).
 */
export function scriptArb (target: FuzzTarget, count: number): fc.Arbitrary<FuzzScript> {
  const opening = fc.oneof(
    { arbitrary: fc.constant<Opening>('connect'), weight: 14 },
    { arbitrary: fc.constant<Opening>('fuzzed-connect'), weight: 3 },
    { arbitrary: fc.constant<Opening>('none'), weight: 2 },
    { arbitrary: fc.constant<Opening>('mqtt5-huge-properties'), weight: 1 },
  )
  return fc.record({
    opening,
    keepaliveSec: fc.integer({ min: 1, max: 2 }),
    fuzzedConnect: connectArb(target),
    packets: fc.array(validArb(target), { minLength: count - 2, maxLength: count - 2 }),
    mutation: fc.option(fc.tuple(mutationArb, fc.nat()), { freq: 6, nil: undefined }),
  }).map(({ opening, keepaliveSec, fuzzedConnect, packets, mutation }) => {
    const out: FuzzPacket[] = packets.map((p) => ({ bytes: encode(p), label: p.cmd }))
    const mutatedAt = mutation ? mutation[1] % out.length : -1
    if (mutation) out[mutatedAt] = mutate(packets[mutatedAt]!, mutation[0], target)
    if (opening === 'connect') out.unshift({ bytes: encode(connectPacket(target.deviceId, keepaliveSec)), label: 'connect' })
    else if (opening === 'fuzzed-connect') {
      // Any fields, but a keep-alive that bounds how long the broker may wait on us.
      const packet = { ...fuzzedConnect, keepalive: keepaliveSec } as Packet
      out.unshift({ bytes: encode(packet), label: `fuzzed connect ${JSON.stringify({ ...packet, password: undefined })}` })
    } else if (opening === 'mqtt5-huge-properties') out.unshift(mqtt5HugeProperties(target.deviceId))
    else if (mutatedAt !== 0) {
      out[0] = { ...out[0]!, label: `${out[0]!.label} before CONNECT`, mustClose: '[MQTT-3.1.0-1] first packet not CONNECT' }
    }
    out.push({ bytes: encode({ cmd: 'pingreq' }), label: 'pingreq (end marker)' })
    return { packets: out, keepaliveSec: opening === 'connect' || opening === 'fuzzed-connect' ? keepaliveSec : 0 }
  })
}

/**
 * An MQTT 5 CONNECT whose property length claims 268 MB: aedes speaks 3.1.1,
 * so it must answer "unacceptable protocol version" and close [MQTT-3.1.2-2],
 * without reserving anything for the claimed length.
 */
function mqtt5HugeProperties (clientId: string): FuzzPacket {
  const id = Buffer.from(clientId)
  const body = Buffer.concat([
    Buffer.from([0x00, 0x04]), Buffer.from('MQTT'), Buffer.from([0x05, 0x02, 0x00, 0x02]),
    Buffer.from([0xff, 0xff, 0xff, 0x7f]), // property length: the largest variable byte integer
    Buffer.from([0x00, id.length]), id,
  ])
  return { bytes: join(0x10, varint(body.length), body), label: 'mqtt5 connect with a 268 MB property length', mustClose: '[MQTT-3.1.2-2] unsupported protocol level' }
}

/** The script for connection `index` of a run with `seed`; the same pair always gives the same bytes. */
export function scriptFor (target: FuzzTarget, count: number, seed: number, index: number): FuzzScript {
  return fc.sample(scriptArb(target, count), { seed: (seed + index * 7_919) | 0, numRuns: 1 })[0]!
}
