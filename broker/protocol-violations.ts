/**
 * Packets from a device that break MQTT 3.1.1. aedes closes the connection
 * on each, but says why only through `clientError`, which it also raises for
 * every socket reset and keep-alive timeout, or not at all (a CONNACK from a
 * client is dropped in silence). Read there, a device that sends the broker
 * what no conforming client sends (a fuzzer on a stolen identity, firmware
 * that corrupts its frames) could not be told from a poor link. Here each
 * becomes one `protocol-violation` event per connection, naming the device:
 *
 * - `MALFORMED_PACKET`: the bytes do not parse (a Remaining Length over four
 *   bytes, reserved flag bits set, QoS 3, …), heard on the client's parser;
 * - `PROTOCOL_VIOLATION`: a packet that parses but may not be sent: a packet
 *   before CONNECT or a second CONNECT, a wildcard or empty topic in a
 *   PUBLISH, a SUBSCRIBE or UNSUBSCRIBE without a filter, a packet only a
 *   server sends; and a topic deeper than the broker takes, which is
 *   aedes' limit rather than MQTT's but closes the connection the same.
 *
 * Hooks that fail a parse on purpose and report it themselves
 * (packet-size-limit.ts, topic-validity.ts) throw a `ReportedParseError`:
 * the connection is then reported by them alone.
 */
import type { Client } from 'aedes'

/** A parse failed by one of the broker's own hooks, which has reported it already. */
export class ReportedParseError extends Error {}

export type ViolationCode = 'MALFORMED_PACKET' | 'PROTOCOL_VIOLATION'

interface ParserEvents {
  prependListener: ((event: 'error', listener: (error: Error) => void) => void) & ((event: 'packet', listener: (packet: SentPacket) => void) => void)
}

interface SentPacket { cmd: string, subscriptions?: unknown[], unsubscriptions?: unknown[] }

/** Packet types only a server sends [MQTT-2.2.1]; aedes drops a client that sends one, silently. */
const SERVER_ONLY: ReadonlySet<string> = new Set(['connack', 'suback', 'unsuback', 'pingresp'])

/** What a packet that parsed breaks, before aedes handles it; undefined for nearly every packet. */
export function packetViolation (packet: SentPacket): string | undefined {
  if (SERVER_ONLY.has(packet.cmd)) return `a ${packet.cmd.toUpperCase()} from a client, which only a server sends`
  if (packet.cmd === 'subscribe' && packet.subscriptions?.length === 0) return 'a SUBSCRIBE with no topic filter [MQTT-3.8.3-3]'
  if (packet.cmd === 'unsubscribe' && packet.unsubscriptions?.length === 0) return 'an UNSUBSCRIBE with no topic filter [MQTT-3.10.3-2]'
  return undefined
}

/** aedes' errors that are its verdict on a packet the client sent (lib/handlers), read as what the client did. */
export function aedesViolation (error: Error & { info?: { cmd?: string } }): string | undefined {
  switch (error.message) {
    case 'Invalid protocol':
      return error.info?.cmd === 'connect' ? 'a second CONNECT on one connection [MQTT-3.1.0-2]' : `a ${(error.info?.cmd ?? 'packet').toUpperCase()} before CONNECT [MQTT-3.1.0-1]`
    case '# is not allowed in PUBLISH':
    case '+ is not allowed in PUBLISH':
      return `a wildcard in a PUBLISH topic [MQTT-3.3.2-2]`
    case 'empty topic not allowed in PUBLISH':
      return 'a PUBLISH with an empty topic [MQTT-4.7.3-1]'
    case 'topic has too many levels':
      // Not MQTT's limit but the broker's (a topic or filter of over 100 levels), on which aedes closes all the same.
      return 'a topic deeper than the broker takes (aedes\' maxTopicLevels, 100 levels)'
    default:
      return undefined
  }
}

/** One report per connection, whichever of the three ways a violation is heard first. */
export class ProtocolViolations {
  readonly #reported = new WeakSet<Client>()
  readonly #report: (client: Client, code: ViolationCode, reason: string) => void

  constructor (report: (client: Client, code: ViolationCode, reason: string) => void) {
    this.#report = report
  }

  /** Listens on the client's parser, before aedes (whose listeners close the connection): the report comes before the disconnect. */
  install (client: Client): void {
    const parser = (client as unknown as { _parser: ParserEvents })._parser
    parser.prependListener('error', (error) => {
      // Whatever the parser says after its first error is about the same bytes (a
      // hook's refused string comes back as mqtt-packet's "Cannot parse topic").
      if (error instanceof ReportedParseError) this.#reported.add(client)
      else this.#once(client, 'MALFORMED_PACKET', `malformed MQTT packet (${error.message})`)
    })
    parser.prependListener('packet', (packet) => {
      const violation = packetViolation(packet)
      if (violation === undefined) return
      this.#once(client, 'PROTOCOL_VIOLATION', violation)
      // aedes closes on most of these, but answers an empty UNSUBSCRIBE: the connection is closed here for all.
      ;(client as unknown as { conn: { destroy: () => void } }).conn.destroy()
    })
  }

  /** aedes' `clientError` and `connectionError`. */
  onAedesError (client: Client, error: Error): void {
    const violation = aedesViolation(error)
    if (violation !== undefined) this.#once(client, 'PROTOCOL_VIOLATION', violation)
  }

  #once (client: Client, code: ViolationCode, reason: string): void {
    if (this.#reported.has(client)) return
    this.#reported.add(client)
    this.#report(client, code, `${reason}; connection closed`)
  }
}
