import type { Client } from 'aedes'
import { ReportedParseError } from './protocol-violations.ts'

interface LengthParser {
  packet: { length: number }
  _parseLength: () => boolean
  _emitError: (error: Error) => void
}

/**
 * Enforces a maximum MQTT packet size as soon as the fixed header's
 * Remaining Length is read (MQTT-2.2.3), before the body is buffered: without
 * it one client can make the broker hold up to 256 MB per connection.
 * mqtt-packet has no such option; this wraps its `_parseLength` state on
 * this client's parser only (a candidate for an upstream `maxPacketSize`).
 */
export function installPacketSizeLimit (client: Client, maxBytes: number, onExceeded: (bytes: number) => void): void {
  const parser = (client as unknown as { _parser: LengthParser })._parser
  const parseLength = parser._parseLength
  parser._parseLength = function parseLengthWithLimit (this: LengthParser): boolean {
    const complete = parseLength.call(this)
    if (complete && this.packet.length > maxBytes) {
      onExceeded(this.packet.length)
      this._emitError(new ReportedParseError(`packet of ${this.packet.length} bytes exceeds the ${maxBytes}-byte limit`))
      return false
    }
    return complete
  }
}
