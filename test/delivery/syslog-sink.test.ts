import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { connect, createServer as createNetServer, type Server, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { createServer as createTlsServer, type TlsOptions } from 'node:tls'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import pkg from '../../package.json' with { type: 'json' }
import { freePort } from '../helpers/free-port.ts'
import { cefMessage } from '../../delivery/cef.ts'
import type { DeliveredChange, Delivery, DeliveryResult, Sink } from '../../delivery/sink.ts'
import { createSyslogSink } from '../../delivery/syslog-sink.ts'
import type { Alert } from '../../shared/alert-contract.ts'
import { alertOf, deliveryOf } from '../helpers/alerts.ts'
import { parseCef } from '../helpers/cef.ts'

const HOSTNAME = 'pg-test-host'
const HOSTILE_FIRMWARE = '3.0|evil=1\\x\nCEF:0|fake|fake|1|x|y|10|act=blocked\r\n12 <13>1 - - - - - -'

/** A firmware-outdated alert (a fresh id each time) delivered at a fixed time. */
const FIRMWARE_OUTDATED: Partial<Alert> = {
  policy: 'firmware-outdated', severity: 'high', deviceId: 'flood-001', site: 'riverside', kind: 'flood',
  summary: 'firmware 1.2.0 is older than the minimum 2.0.0', detectedAt: '2025-03-04T05:06:07.089Z', evidence: { firmware: '1.2.0', minimum: '2.0.0' },
  stride: 'Tampering', attack: 'T0866 Exploitation of Remote Services', lastSeenAt: '2025-03-04T05:06:07.089Z', occurrences: 1,
}

const delivery = (alert: Partial<Alert> = {}, change: DeliveredChange = 'opened'): Delivery =>
  deliveryOf(alertOf({ ...FIRMWARE_OUTDATED, ...alert }), change, { createdAtMs: Date.parse('2025-03-04T05:06:09.123Z') })

/** Alerts in a row: plain, multi-byte (MSG-LEN counts octets), hostile firmware, every severity and change. */
function alertsInARow (): Delivery[] {
  return [
    delivery(),
    delivery({ severity: 'critical', summary: 'Überschwemmungssensor 🌊 meldet 9999 cm', deviceId: 'flood-002' }, 'acknowledged'),
    delivery({ severity: 'medium', summary: `device runs firmware ${HOSTILE_FIRMWARE}`, deviceId: 'flood-0|0=1\\x\r\n]"', evidence: { firmware: HOSTILE_FIRMWARE } }),
    delivery({ severity: 'low', site: null, kind: null, attack: null }, 'resolved'),
    delivery({ severity: 'info' }),
  ]
}

/** RFC 5424 §6, strictly: header fields of PRINTUSASCII within their lengths, SD elements with escaped values, a MSG without a line break. */
const SD_NAME = String.raw`(?:(?![ =\]"])[\x21-\x7e]){1,32}`
const RFC5424 = new RegExp(String.raw`^<(?<pri>\d{1,3})>1 (?<timestamp>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-]\d\d:\d\d)) ` +
  String.raw`(?<hostname>[\x21-\x7e]{1,255}) (?<appName>[\x21-\x7e]{1,48}) (?<procId>[\x21-\x7e]{1,128}) (?<msgId>[\x21-\x7e]{1,32}) ` +
  String.raw`(?<sd>-|(?:\[${SD_NAME}(?: ${SD_NAME}="(?:[^"\\\]]|\\["\\\]])*")*\])+) (?<msg>.*)$`)

function parseSyslog (frame: string): Record<string, string> {
  const match = RFC5424.exec(frame)
  if (!match) throw new Error(`not an RFC 5424 message: ${JSON.stringify(frame)}`)
  return { ...match.groups }
}

/** PRI = facility authpriv (10) × 8 + the syslog severity (RFC 5424 §6.2.1): critical 2, high 3, medium 4, low 5, info 6. */
const PRI = { critical: 82, high: 83, medium: 84, low: 85, info: 86 }

/** What the receiver must have seen for a delivery, whoever parsed it. */
function expectReceived (parts: Record<string, string | undefined>, sent: Delivery): void {
  expect(parts).toMatchObject({
    pri: String(PRI[sent.alert.severity]), timestamp: new Date(sent.createdAtMs).toISOString(),
    hostname: HOSTNAME, appName: 'placeguard', procId: String(process.pid), msgId: sent.change,
  })
}

function expectCef (msg: string, sent: Delivery): void {
  const { header, extension } = parseCef(msg)
  expect(header).toEqual(['CEF:0', 'PlaceGuard', 'PlaceGuard', pkg.version, sent.alert.policy, sent.alert.summary.replace(/[\r\n]/g, ' '),
    String({ info: 1, low: 3, medium: 5, high: 8, critical: 10 }[sent.alert.severity])])
  const { attack, site, kind, response, resolution } = sent.alert
  const custom = Object.entries({ cs2: attack, cs3: site, cs4: kind, cs5: response, cs6: resolution })
    .filter(([, value]) => value !== null).flatMap(([key]) => [`${key}Label`, key])
  expect([...extension.keys()]).toEqual(['rt', 'externalId', 'act', 'cat', 'suid', 'msg', 'cn1Label', 'cn1', 'cs1Label', 'cs1', ...custom])
  expect(extension.get('suid')).toBe(sent.alert.deviceId)
  expect(extension.get('msg')).toBe(sent.alert.summary)
  expect(extension.get('externalId')).toBe(sent.alert.id)
  expect(JSON.parse(extension.get('cs1')!)).toEqual(sent.alert.evidence)
}

// ---------------------------------------------------------------- certificates

interface Pki { dir: string, ca: string, serverCert: string, serverKey: string }

/** A CA and a server certificate it signs for 127.0.0.1 (or `san`), made with openssl. */
function makePki (dir: string, name: string, san = 'IP:127.0.0.1'): Pki {
  const file = (suffix: string): string => join(dir, `${name}-${suffix}`)
  const openssl = (...args: string[]): void => { execFileSync('openssl', args, { stdio: 'pipe' }) }
  const ecKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']
  openssl('req', '-x509', ...ecKey, '-keyout', file('ca.key'), '-out', file('ca.pem'), '-days', '2', '-subj', `/CN=${name} test CA`)
  openssl('req', ...ecKey, '-keyout', file('server.key'), '-out', file('server.csr'), '-subj', '/CN=syslog server')
  writeFileSync(file('ext.cnf'), `subjectAltName=${san}\nextendedKeyUsage=serverAuth\nbasicConstraints=critical,CA:FALSE\n`)
  openssl('x509', '-req', '-in', file('server.csr'), '-CA', file('ca.pem'), '-CAkey', file('ca.key'), '-CAcreateserial',
    '-days', '2', '-out', file('server.pem'), '-extfile', file('ext.cnf'))
  return { dir, ca: file('ca.pem'), serverCert: file('server.pem'), serverKey: file('server.key') }
}

const tlsOptionsOf = (pki: Pki): TlsOptions => ({ cert: readFileSync(pki.serverCert), key: readFileSync(pki.serverKey) })

// ---------------------------------------------------------------- a strict receiver

interface Receiver {
  port: number
  frames: string[]
  /** Framing errors; none is expected. */
  errors: string[]
  connections: number
  open: Set<Socket>
  /** Drops every connection, keeps listening. */
  drop: () => Promise<void>
  close: () => Promise<void>
}

/**
 * A syslog receiver over TCP, or TLS with `tls`, reading RFC 5425 §4.3
 * frames strictly: MSG-LEN is NONZERO-DIGIT *DIGIT, counts octets, and the
 * message is UTF-8. A stream that breaks this is recorded and cut.
 */
async function startReceiver (tls?: TlsOptions, port = 0): Promise<Receiver> {
  const frames: string[] = []
  const errors: string[] = []
  const open = new Set<Socket>()
  const receiver = { frames, errors, open, connections: 0 } as Receiver
  const onConnection = (socket: Socket): void => {
    receiver.connections++
    open.add(socket)
    socket.on('close', () => open.delete(socket))
    socket.on('error', () => {})
    let buffered = Buffer.alloc(0)
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk])
      for (;;) {
        const space = buffered.indexOf(0x20)
        const length = buffered.subarray(0, space === -1 ? buffered.length : space).toString('latin1')
        if (!(space === -1 ? /^(?:[1-9]\d{0,8})?$/ : /^[1-9]\d{0,8}$/).test(length)) {
          errors.push(`bad MSG-LEN ${JSON.stringify(length)}`)
          socket.destroy()
          return
        }
        if (space === -1) return
        const end = space + 1 + Number(length)
        if (buffered.length < end) return
        try {
          frames.push(new TextDecoder('utf-8', { fatal: true }).decode(buffered.subarray(space + 1, end)))
        } catch {
          errors.push('a frame is not UTF-8')
        }
        buffered = buffered.subarray(end)
      }
    })
    socket.on('end', () => { if (buffered.length > 0) errors.push(`connection ended inside a frame: ${buffered.toString()}`) })
  }
  const server: Server = tls ? createTlsServer(tls, onConnection) : createNetServer(onConnection)
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => resolve())
  })
  receiver.port = (server.address() as { port: number }).port
  receiver.drop = async () => {
    await Promise.all([...open].map((socket) => new Promise((resolve) => { socket.once('close', resolve); socket.destroy() })))
  }
  receiver.close = async () => {
    const closed = new Promise((resolve) => server.close(resolve))
    await receiver.drop()
    await closed
  }
  return receiver
}

function sinkOf (url: string, ca?: string, connectTimeoutMs?: number): Sink {
  return createSyslogSink({ type: 'syslog', minSeverity: 'info', url, ...ca === undefined ? {} : { ca } }, { hostname: HOSTNAME, connectTimeoutMs })
}

/** One send on a fresh sink, closed after. */
async function sendOnce (url: string, ca?: string): Promise<DeliveryResult> {
  const sink = sinkOf(url, ca)
  try {
    return await sink.send([delivery()])
  } finally {
    await sink.close()
  }
}

async function sendAll (sink: Sink, deliveries: Delivery[]): Promise<void> {
  for (const one of deliveries) expect(await sink.send([one])).toEqual({ outcome: 'success' })
}

let dir: string
let trusted: Pki
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'pg-syslog-'))
  trusted = makePki(dir, 'trusted')
})
afterAll(() => rmSync(dir, { recursive: true, force: true }))

// ---------------------------------------------------------------- rsyslog

/**
 * Debian's rsyslog as an independent receiver: imtcp with octet-counted
 * framing, its RFC 5424 parser, mmpstrucdata for the SD element and
 * liblognorm's CEF parser (mmnormalize). Each input writes what it parsed,
 * one JSON object a line, to its own file.
 */
describe('syslog sink → rsyslog', () => {
  let rsyslog: ChildProcess
  let stderr = ''
  let tcpPort: number
  let tlsPort: number
  const output = (input: 'tcp' | 'tls'): string => join(dir, `rsyslog-${input}.jsonl`)

  beforeAll(async () => {
    tcpPort = await freePort()
    tlsPort = await freePort()
    writeFileSync(join(dir, 'cef.rb'), 'version=2\nrule=:%cef:cef%\n')
    const ruleset = (input: 'tcp' | 'tls'): string => `ruleset(name="${input}") {
  action(type="mmpstrucdata" sd_name.lowercase="off")
  action(type="mmnormalize" rulebase="${join(dir, 'cef.rb')}")
  action(type="omfile" file="${output(input)}" template="parsed")
}`
    writeFileSync(join(dir, 'rsyslog.conf'), `
global(workDirectory="${dir}" defaultNetstreamDriverCAFile="${trusted.ca}"
       defaultNetstreamDriverCertFile="${trusted.serverCert}" defaultNetstreamDriverKeyFile="${trusted.serverKey}")
module(load="imtcp")
module(load="mmpstrucdata")
module(load="mmnormalize")
template(name="parsed" type="list" option.jsonf="on") {
  property(outname="pri" name="pri" format="jsonf")
  property(outname="timestamp" name="timereported" dateFormat="rfc3339" format="jsonf")
  property(outname="hostname" name="hostname" format="jsonf")
  property(outname="appName" name="app-name" format="jsonf")
  property(outname="procId" name="procid" format="jsonf")
  property(outname="msgId" name="msgid" format="jsonf")
  property(outname="structuredData" name="structured-data" format="jsonf")
  property(outname="msg" name="msg" format="jsonf")
  property(outname="parsed" name="$!" format="jsonf")
}
${ruleset('tcp')}
${ruleset('tls')}
input(type="imtcp" address="127.0.0.1" port="${tcpPort}" ruleset="tcp")
input(type="imtcp" address="127.0.0.1" port="${tlsPort}" ruleset="tls"
      streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
`)
    rsyslog = spawn('/usr/sbin/rsyslogd', ['-n', '-f', join(dir, 'rsyslog.conf'), '-i', join(dir, 'rsyslogd.pid')], { stdio: ['ignore', 'ignore', 'pipe'] })
    rsyslog.stderr!.on('data', (chunk) => { stderr += chunk })
    for (const port of [tcpPort, tlsPort]) {
      await vi.waitFor(async () => {
        if (rsyslog.exitCode !== null) throw new Error(`rsyslogd exited with ${rsyslog.exitCode}: ${stderr}`)
        await new Promise<void>((resolve, reject) => {
          const probe = connect(port, '127.0.0.1', () => { probe.destroy(); resolve() })
          probe.once('error', reject)
        })
      }, { timeout: 10_000, interval: 50 })
    }
  })
  afterAll(async () => {
    if (rsyslog?.exitCode === null) {
      const exited = new Promise((resolve) => rsyslog.once('exit', resolve))
      rsyslog.kill('SIGTERM')
      await exited
    }
  })

  /** rsyslog's records for an input, once the last sent delivery is among them. */
  async function received (input: 'tcp' | 'tls', last: Delivery): Promise<Array<Record<string, string>>> {
    return await vi.waitFor(() => {
      const lines = existsSync(output(input)) ? readFileSync(output(input), 'utf8').split('\n').filter(Boolean) : []
      const records = lines.map((line) => JSON.parse(line) as Record<string, string>)
      if (!records.some((record) => record.msg?.includes(last.alert.id))) throw new Error(`rsyslog has not written the last message yet (${stderr})`)
      return records
    }, { timeout: 10_000, interval: 50 })
  }

  it.each(['tcp', 'tls'] as const)('over %s: rsyslog frames, parses RFC 5424, the SD element and the CEF exactly as sent', async (input) => {
    const sink = input === 'tcp' ? sinkOf(`tcp://127.0.0.1:${tcpPort}`) : sinkOf(`tls://127.0.0.1:${tlsPort}`, trusted.ca)
    const sent = alertsInARow()
    // A delivery id that needs SD-PARAM escaping (RFC 5424 §6.3.3).
    sent[0]!.id = 'delivery "1" [a\\b]'
    try {
      await sendAll(sink, sent)
    } finally {
      await sink.close()
    }

    const records = await received(input, sent.at(-1)!)
    // One record per delivery: the hostile firmware string added no message.
    expect(records).toHaveLength(sent.length)
    records.forEach((record, index) => {
      const one = sent[index]!
      expectReceived(record, one)
      expect(record.msg).toBe(cefMessage(one, pkg.version))
      expectCef(record.msg!, one)
      const parsed = JSON.parse(record.parsed!) as { 'rfc5424-sd': Record<string, unknown>, cef: { Name: string, SignatureID: string, Extensions: Record<string, string> } }
      expect(parsed['rfc5424-sd']).toEqual({ 'placeguard@32473': { alertId: one.alert.id, deliveryId: one.id } })
      expect(parsed.cef).toMatchObject({ DeviceVendor: 'PlaceGuard', DeviceProduct: 'PlaceGuard', DeviceVersion: pkg.version, SignatureID: one.alert.policy })
      expect(parsed.cef.Name).toBe(one.alert.summary.replace(/[\r\n]/g, ' '))
      const extensions = undoLiblognorm363(parsed.cef.Extensions)
      expect(Object.keys(extensions)).toEqual([...parseCef(record.msg!).extension.keys()])
      expect(extensions).toMatchObject({ suid: one.alert.deviceId, msg: one.alert.summary, externalId: one.alert.id })
      expect(JSON.parse(extensions.cs1!)).toEqual(one.alert.evidence)
    })
  })
})

/**
 * liblognorm 2.0.6 (Debian 12) drops the first character of the first
 * extension key when no space follows the header's last `|`, as in the
 * spec's own example (rsyslog/liblognorm#363, fixed upstream). Our first
 * key is `rt`; it reads `t`.
 */
function undoLiblognorm363 (extensions: Record<string, string>): Record<string, string> {
  if (!('t' in extensions) || 'rt' in extensions) return extensions
  const { t, ...rest } = extensions
  return { rt: t!, ...rest }
}

// ---------------------------------------------------------------- strict receivers in the test

describe('syslog sink → a strict receiver', () => {
  it.each(['tcp', 'tls'] as const)('over %s: alerts in a row arrive as separate, complete, valid frames; a hostile firmware string adds nothing', async (protocol) => {
    const receiver = await startReceiver(protocol === 'tls' ? tlsOptionsOf(trusted) : undefined)
    const sink = sinkOf(`${protocol}://127.0.0.1:${receiver.port}`, protocol === 'tls' ? trusted.ca : undefined)
    const sent = alertsInARow()
    try {
      await sendAll(sink, sent)
      await vi.waitFor(() => expect(receiver.frames.length).toBeGreaterThanOrEqual(sent.length))
      expect(receiver.errors).toEqual([])
      expect(receiver.frames).toHaveLength(sent.length)
      expect(receiver.connections).toBe(1)
      receiver.frames.forEach((frame, index) => {
        const parts = parseSyslog(frame)
        expectReceived(parts, sent[index]!)
        expect(parts.sd).toBe(`[placeguard@32473 alertId="${sent[index]!.alert.id}" deliveryId="${sent[index]!.id}"]`)
        expectCef(parts.msg!, sent[index]!)
      })
    } finally {
      await sink.close()
      await receiver.close()
    }
  })

  it('answers retryable while the receiver is down and reconnects on the next send; close() ends the connection', async () => {
    const port = await freePort()
    const sink = sinkOf(`tcp://127.0.0.1:${port}`)
    const down = await sink.send([delivery()])
    expect(down).toMatchObject({ outcome: 'retryable', error: expect.stringMatching(/ECONNREFUSED/) })

    const receiver = await startReceiver(undefined, port)
    try {
      await sendAll(sink, [delivery(), delivery()])
      await vi.waitFor(() => expect(receiver.frames).toHaveLength(2))
      expect(receiver.connections).toBe(1)

      // The receiver drops the connection; the sink notices and opens a new one on the next send.
      await receiver.drop()
      await delay(100)
      await sendAll(sink, [delivery()])
      await vi.waitFor(() => expect(receiver.frames).toHaveLength(3))
      expect(receiver.connections).toBe(2)
      expect(receiver.errors).toEqual([])

      await sink.close()
      await vi.waitFor(() => expect(receiver.open.size).toBe(0))
      expect(await sink.send([delivery()])).toMatchObject({ outcome: 'retryable' })
    } finally {
      await sink.close()
      await receiver.close()
    }
    expect(await sendOnce(`tcp://127.0.0.1:${port}`)).toMatchObject({ outcome: 'retryable', error: expect.stringMatching(/ECONNREFUSED/) })
  })

  it('refuses a TLS server its CA did not sign, sending nothing in clear; trusting that CA makes the same server work', async () => {
    const rogue = makePki(dir, 'rogue')
    const receiver = await startReceiver(tlsOptionsOf(rogue))
    // A TCP relay in front of the server records every byte the sink sends.
    const wire: Buffer[] = []
    const relayed = new Set<Socket>()
    const relay = createNetServer((client) => {
      const upstream = connect(receiver.port, '127.0.0.1')
      relayed.add(client).add(upstream)
      client.on('data', (chunk: Buffer) => wire.push(chunk))
      client.pipe(upstream).pipe(client)
      client.on('error', () => upstream.destroy())
      upstream.on('error', () => client.destroy())
    })
    await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', () => resolve()))
    const url = `tls://127.0.0.1:${(relay.address() as { port: number }).port}`
    const sent = delivery({ summary: 'secret-looking summary 7f3a' })
    const refusing = sinkOf(url, trusted.ca)
    const trusting = sinkOf(url, rogue.ca)
    try {
      const refused = await refusing.send([sent])
      expect(refused).toMatchObject({ outcome: 'retryable', error: expect.stringMatching(/certificate/i) })
      const bytes = Buffer.concat(wire)
      expect(bytes.length).toBeGreaterThan(0) // the ClientHello went through the relay
      for (const text of ['CEF:', 'placeguard', sent.alert.summary, sent.alert.id]) expect(bytes.includes(text)).toBe(false)
      expect(receiver.frames).toEqual([])

      expect(await trusting.send([sent])).toEqual({ outcome: 'success' })
      await vi.waitFor(() => expect(receiver.frames).toHaveLength(1))
    } finally {
      await refusing.close()
      await trusting.close()
      for (const socket of relayed) socket.destroy()
      relay.close()
      await receiver.close()
    }
  })

  it('refuses a TLS server whose certificate names another host, and one with no CA given that the system does not trust', async () => {
    const otherName = makePki(dir, 'other-name', 'DNS:syslog.example')
    const receiver = await startReceiver(tlsOptionsOf(otherName))
    try {
      expect(await sendOnce(`tls://127.0.0.1:${receiver.port}`, otherName.ca))
        .toMatchObject({ outcome: 'retryable', error: expect.stringMatching(/altnames|does not match/i) })
      expect(await sendOnce(`tls://127.0.0.1:${receiver.port}`))
        .toMatchObject({ outcome: 'retryable', error: expect.stringMatching(/certificate/i) })
      expect(receiver.frames).toEqual([])
    } finally {
      await receiver.close()
    }
  })

  it('gives up on a TLS handshake that never completes, as retryable', async () => {
    const silent = createNetServer((socket) => socket.on('error', () => {}))
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', () => resolve()))
    const sink = sinkOf(`tls://127.0.0.1:${(silent.address() as { port: number }).port}`, trusted.ca, 300)
    try {
      expect(await sink.send([delivery()])).toMatchObject({ outcome: 'retryable', error: expect.stringMatching(/timed out/) })
    } finally {
      await sink.close()
      silent.close()
    }
  })

  it.each([
    ['a CA file it cannot read', 'tls://127.0.0.1:6514', 'missing-ca.pem', /missing-ca\.pem/],
    ['a port out of range', 'tcp://127.0.0.1:99999', undefined, /port from 1 to 65535/],
  ])('will not start with %s', (_, url, ca, message) => {
    let error: unknown
    try {
      sinkOf(url, ca === undefined ? undefined : join(dir, ca))
    } catch (thrown) {
      error = thrown
    }
    expect(error).toMatchObject({ code: 'PG_ERR_CONFIG_INVALID', message: expect.stringMatching(message) })
  })
})
