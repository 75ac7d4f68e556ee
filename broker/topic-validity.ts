/**
 * UTF-8 strings in MQTT packets [MQTT-1.5.3]: a topic (or any other string)
 * holding ill-formed UTF-8 [MQTT-1.5.3-1] or U+0000 [MQTT-1.5.3-2] makes the
 * receiver close the network connection. mqtt-packet decodes strings with
 * `Buffer#toString('utf8')`, which silently turns bad bytes into U+FFFD, so
 * two different byte strings would reach the ACL and the retained store as
 * one topic (STRIDE: Tampering). The raw bytes are only visible inside the
 * parser: this wraps its `_parseString` on one client's parser, as
 * packet-size-limit.ts wraps `_parseLength`.
 */
import { isUtf8 } from 'node:buffer'
import type { Client } from 'aedes'
import { ReportedParseError } from './protocol-violations.ts'

interface StringParser {
  packet: { cmd?: string }
  _pos: number
  _list: { length: number, slice: (start: number, end: number) => Buffer }
  _parseString: (maybeBuffer?: unknown) => string | null
  _emitError: (error: Error) => void
}

/** Why `bytes` may not be an MQTT UTF-8 string, or undefined if it may. */
export function stringDefect (bytes: Uint8Array): string | undefined {
  if (!isUtf8(bytes)) return 'ill-formed UTF-8 [MQTT-1.5.3-1]'
  if (bytes.includes(0)) return 'U+0000 [MQTT-1.5.3-2]'
  return undefined
}

/**
 * Renders untrusted bytes for a security event: printable ASCII as is, every
 * other byte as `\xNN`, so the event shows exactly what was sent and cannot
 * carry control characters into a log or a SOC tool.
 */
export function escapeBytes (bytes: Uint8Array, max = 200): string {
  let out = ''
  for (const byte of bytes.subarray(0, max)) {
    out += byte >= 0x20 && byte < 0x7f && byte !== 0x5c ? String.fromCharCode(byte) : `\\x${byte.toString(16).padStart(2, '0')}`
  }
  return bytes.length > max ? `${out}…` : out
}

/**
 * From now on, a string in a packet from `client` that is not well-formed
 * UTF-8 without U+0000 fails the parse, which makes aedes close the
 * connection; `onInvalid` hears which packet and the escaped bytes first.
 */
export function installStringValidity (client: Client, onInvalid: (packetType: string, escaped: string, defect: string) => void): void {
  const parser = (client as unknown as { _parser: StringParser })._parser
  const parseString = parser._parseString
  parser._parseString = function parseValidString (this: StringParser, maybeBuffer?: unknown): string | null {
    const start = this._pos + 2
    const result = parseString.call(this, maybeBuffer)
    if (result === null) return null
    // Node's decoder turns every ill-formed sequence into U+FFFD, so a string
    // with neither U+FFFD nor U+0000 came from good bytes: the common case
    // costs two scans of the decoded string and no copy.
    if (!result.includes('\uFFFD') && !result.includes('\u0000')) return result
    const bytes = this._list.slice(start, this._pos)
    const defect = stringDefect(bytes)
    if (!defect) return result
    onInvalid(this.packet.cmd ?? 'unknown', escapeBytes(bytes), defect)
    this._emitError(new ReportedParseError(`string with ${defect}`))
    return null
  }
}
