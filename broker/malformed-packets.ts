/**
 * An MQTT packet that does not parse (a Remaining Length over four bytes,
 * reserved flag bits set, a SUBSCRIBE with no topic filter, …) makes
 * mqtt-packet emit an error on the client's parser, and aedes closes the
 * connection. aedes reports it as a `clientError`, which it also raises for
 * every socket reset and keep-alive timeout; read there, a device that sends
 * the broker malformed packets (a fuzzer on a stolen identity, or firmware
 * that corrupts its frames) could not be told from a poor link. Heard on the
 * parser itself, it is a parse error and nothing else.
 *
 * Hooks that fail a parse on purpose and report it themselves
 * (packet-size-limit.ts, topic-validity.ts) throw a `ReportedParseError`,
 * which this passes over.
 */
import type { Client } from 'aedes'

/** A parse failed by one of the broker's own hooks, which has reported it already. */
export class ReportedParseError extends Error {}

interface ErrorParser { prependListener: (event: 'error', listener: (error: Error) => void) => void }

/** Calls `onMalformed` with mqtt-packet's reason at the first packet from `client` that does not parse. */
export function installMalformedPacketReport (client: Client, onMalformed: (reason: string) => void): void {
  const parser = (client as unknown as { _parser: ErrorParser })._parser
  let reported = false
  // Before aedes' own listener, which closes the connection: the report comes before the disconnect.
  parser.prependListener('error', (error) => {
    // The connection is closing; whatever the parser says after its first
    // error is about the same bytes (a hook's refused string comes back as
    // mqtt-packet's "Cannot parse topic").
    if (reported) return
    reported = true
    if (!(error instanceof ReportedParseError)) onMalformed(error.message)
  })
}
