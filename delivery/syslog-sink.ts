/**
 * Syslog sink: each delivery is one RFC 5424 message whose MSG is a CEF line
 * (cef.ts), sent over TCP (tcp://) or TLS (tls://, RFC 5425) with RFC 5425
 * §4.3 octet-counting framing, as rsyslog, syslog-ng and SIEM collectors
 * accept it. Octet counting, not a newline after each message (RFC 6587
 * §3.4.2): a frame ends where its length says, whatever it holds.
 *
 * TCP syslog has no application-level acknowledgement. `success` means the
 * bytes were handed to the kernel; a receiver that dies before reading them
 * loses them, and a dead connection is only noticed on the send after.
 * The SD element carries the delivery id, stable across retries, so a
 * receiver can discard the duplicate of a retried message.
 */
import { readFileSync } from 'node:fs'
import { connect as connectTcp, isIP, type Socket } from 'node:net'
import { hostname as osHostname } from 'node:os'
import { connect as connectTls, type TLSSocket } from 'node:tls'
import pkg from '../package.json' with { type: 'json' }
import type { Severity } from '../shared/alert-contract.ts'
import type { SinkConfigOf } from './config.ts'
import { PlaceGuardError } from '../shared/errors.ts'
import { cefAuditMessage, cefMessage } from './cef.ts'
import type { AuditDelivery, Delivery, DeliveryResult, Sink } from './sink.ts'

export interface SyslogSinkOptions {
  /** Device Version in the CEF header; default package.json's version. */
  version?: string
  /** HOSTNAME in the syslog header; default os.hostname(). */
  hostname?: string
  /** Longest wait for the TCP connection and the TLS handshake. */
  connectTimeoutMs?: number
  /** Longest wait for the kernel to take a message (a receiver that stopped reading). */
  writeTimeoutMs?: number
}

/**
 * Facility 10, security/authorization (private) — "authpriv" (RFC 5424
 * §6.2.1, Table 1). These are security alerts, and their evidence names
 * devices and sites: stock rsyslog configurations file authpriv apart from
 * the world-readable general log (Debian: auth.log; RHEL: /var/log/secure,
 * where plain `auth` would also land in /var/log/messages).
 */
const SYSLOG_FACILITY = 10

/** RFC 5424 §6.2.1, Table 2: 2 Critical, 3 Error, 4 Warning, 5 Notice, 6 Informational. */
const SYSLOG_SEVERITY: Record<Severity, number> = { critical: 2, high: 3, medium: 4, low: 5, info: 6 }

/** RFC 5424 §7.2.2: an SD-ID with an "@" is private to the enterprise number after it. 32473 is IANA's example PEN (RFC 5612); PlaceGuard has none of its own. */
const SD_ID = 'placeguard@32473'

interface SyslogHeader {
  hostname: string
  procId: string
  version: string
}

/**
 * The RFC 5424 message (§6): `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID
 * [SD] MSG`. TIMESTAMP is when the change happened, so a retry repeats it;
 * MSGID the change. The MSG has no BOM (§6.4 allows MSG-ANY): a SIEM looks
 * for "CEF:" at its very start.
 */
function syslogMessage (delivery: Delivery, header: SyslogHeader): string {
  const pri = SYSLOG_FACILITY * 8 + SYSLOG_SEVERITY[delivery.alert.severity]
  const timestamp = new Date(delivery.createdAtMs).toISOString()
  const sd = `[${SD_ID} alertId="${paramValue(delivery.alert.id)}" deliveryId="${paramValue(delivery.id)}"]`
  return `<${pri}>1 ${timestamp} ${headerField(header.hostname, 255)} placeguard ${headerField(header.procId, 128)} ${delivery.change} ${sd} ${cefMessage(delivery, header.version)}`
}

/**
 * An operator audit trail entry as a syslog message: severity Notice (an
 * account of an action, the alerts' `low`), TIMESTAMP when the trail
 * recorded it, MSGID `audit`, the entry's seq and the delivery id in the
 * SD element, and the CEF line (cef.ts, cefAuditMessage) as MSG.
 */
function auditSyslogMessage (delivery: AuditDelivery, header: SyslogHeader): string {
  const pri = SYSLOG_FACILITY * 8 + SYSLOG_SEVERITY.low
  const sd = `[${SD_ID} auditSeq="${delivery.audit.seq}" deliveryId="${paramValue(delivery.id)}"]`
  return `<${pri}>1 ${new Date(delivery.audit.at).toISOString()} ${headerField(header.hostname, 255)} placeguard ${headerField(header.procId, 128)} audit ${sd} ${cefAuditMessage(delivery.audit, header.version)}`
}

/** RFC 5425 §4.3: `MSG-LEN SP SYSLOG-MSG`, MSG-LEN the message's length in octets. */
function octetCounted (message: string): Buffer {
  const bytes = Buffer.from(message, 'utf8')
  return Buffer.concat([Buffer.from(`${bytes.length} `, 'ascii'), bytes])
}

/** RFC 5424 §6.3.3: in a PARAM-VALUE, `"`, `\` and `]` are escaped with a backslash; control characters have no place in one. */
function paramValue (text: string): string {
  return text.replace(/\p{Cc}/gu, ' ').replace(/["\\\]]/g, (c) => `\\${c}`)
}

/** HOSTNAME and PROCID are 1*PRINTUSASCII (RFC 5424 §6): anything else becomes "_", nothing at all the NILVALUE "-". */
function headerField (text: string, maxOctets: number): string {
  return text.replace(/[^\x21-\x7e]/g, '_').slice(0, maxOctets) || '-'
}

export function createSyslogSink (config: SinkConfigOf<'syslog'>, options: SyslogSinkOptions = {}): Sink {
  const { tls, host, port } = endpoint(config.url)
  // Read now: a wrong path is a configuration error at start, not a stream of failed deliveries.
  const ca = config.ca === undefined ? undefined : readCa(config.ca)
  const header: SyslogHeader = { hostname: options.hostname ?? osHostname(), procId: String(process.pid), version: options.version ?? pkg.version }
  const connectTimeoutMs = options.connectTimeoutMs ?? 10_000
  const writeTimeoutMs = options.writeTimeoutMs ?? 30_000
  let socket: Socket | undefined
  let opening: Promise<Socket> | undefined
  let closed = false

  /** The open connection, or a new one: after an error or a close, the next send reconnects. */
  const connection = (): Promise<Socket> => {
    if (socket && !socket.destroyed && socket.writable) return Promise.resolve(socket)
    opening ??= open().then((opened) => {
      socket = opened
      opened.once('close', () => { if (socket === opened) socket = undefined })
      return opened
    }).finally(() => { opening = undefined })
    return opening
  }

  const open = (): Promise<Socket> => new Promise((resolve, reject) => {
    // TLS fails closed: the server certificate must chain to `ca` (or the
    // system's CAs) and name the host; with rejectUnauthorized the handshake
    // errors otherwise, before any message is written.
    const opened = tls
      ? connectTls({ host, port, ca, rejectUnauthorized: true, servername: isIP(host) ? undefined : host })
      : connectTcp({ host, port })
    const timer = setTimeout(() => opened.destroy(new Error(`connect timed out after ${connectTimeoutMs} ms`)), connectTimeoutMs)
    const fail = (error: Error): void => {
      clearTimeout(timer)
      reject(error)
    }
    opened.once('error', fail)
    opened.once(tls ? 'secureConnect' : 'connect', () => {
      clearTimeout(timer)
      opened.off('error', fail)
      if (tls && !(opened as TLSSocket).authorized) {
        opened.destroy()
        reject(new Error('server certificate not authorized'))
        return
      }
      // Errors after this surface through the write callback or 'close'.
      opened.on('error', () => {})
      opened.setKeepAlive(true, 60_000)
      // Read and discard whatever the receiver sends, so its FIN is seen
      // ('end', then 'close') and the next send reconnects.
      opened.resume()
      resolve(opened)
    })
  })

  const transmit = async (messages: string[]): Promise<DeliveryResult> => {
    if (closed) return { outcome: 'retryable', error: 'syslog sink is closed' }
    if (messages.length === 0) return { outcome: 'success' }
    const bytes = Buffer.concat(messages.map(octetCounted))
    try {
      await write(await connection(), bytes, writeTimeoutMs)
      return { outcome: 'success' }
    } catch (error) {
      // Refused, reset, timed out, or a TLS certificate not trusted: the
      // channel, not the message, is at fault, and the same bytes may go
      // through later (a renewed certificate, a corrected `ca`) — retryable.
      return { outcome: 'retryable', error: `syslog ${host}:${port}: ${(error as Error).message}` }
    }
  }

  return {
    type: 'syslog',
    name: config.name ?? 'syslog',
    // One message per delivery; several in a send still go as one write.
    maxBatch: 1,
    ratePerSec: undefined,
    send: (deliveries) => transmit(deliveries.map((delivery) => syslogMessage(delivery, header))),
    // The operator audit trail too, unless the sink's `audit: false` (config.ts): a SIEM keeps the copy the trail's own host cannot rewrite.
    ...(config.audit === false ? {} : { sendAudit: (deliveries: AuditDelivery[]) => transmit(deliveries.map((delivery) => auditSyslogMessage(delivery, header))) }),
    close: async () => {
      closed = true
      const last = socket ?? await opening?.catch(() => undefined)
      if (!last || last.destroyed) return
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => last.destroy(), 1_000)
        last.once('close', () => {
          clearTimeout(timer)
          resolve()
        })
        last.end()
      })
    },
  }
}

/** Resolves once the kernel has the bytes; rejects if the socket errs, closes or makes no progress first. */
function write (socket: Socket, bytes: Buffer, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (error?: Error | null): void => {
      clearTimeout(timer)
      socket.off('close', onClose)
      if (error) reject(error)
      else resolve()
    }
    const onClose = (): void => done(new Error('connection closed before the message was sent'))
    const timer = setTimeout(() => {
      const error = new Error(`write timed out after ${timeoutMs} ms`)
      socket.destroy(error)
      done(error)
    }, timeoutMs)
    socket.once('close', onClose)
    socket.write(bytes, (error) => done(error))
  })
}

/** `tcp://host:port` or `tls://host:port` (`sinkSchema` checked the shape; the port may still be out of range). */
function endpoint (url: string): { tls: boolean, host: string, port: number } {
  const parsed = URL.parse(url)
  const port = Number(parsed?.port)
  if (!parsed || !(port > 0 && port < 65536)) {
    throw new PlaceGuardError('PG_ERR_CONFIG_INVALID', `syslog url: ${url} is not tcp://host:port or tls://host:port with a port from 1 to 65535`, { field: 'delivery.sinks.url' })
  }
  return { tls: parsed.protocol === 'tls:', host: parsed.hostname, port }
}

function readCa (path: string): string {
  try {
    return readFileSync(path, 'utf8')
  } catch (error) {
    throw new PlaceGuardError('PG_ERR_CONFIG_INVALID', `syslog ca: cannot read ${path}: ${(error as Error).message}`,
      { field: 'delivery.sinks.ca', hint: 'give the PEM file of the CA that signed the syslog server certificate', cause: error })
  }
}
