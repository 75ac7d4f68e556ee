/**
 * npm run bench:delivery — alert delivery through the durable outbox, per
 * sink type, into real receivers on loopback (HTTP for webhook, Slack,
 * Teams and PagerDuty; TCP and TLS syslog).
 *
 * Two loads per sink: a steady one (an alert every 200 ms, as a busy
 * incident produces them, or slower where the channel takes only one
 * event per request at a lower rate) for the latency from detection (the alert's
 * `detectedAt`) to the receiver holding it, p50 and p99; and a burst (N
 * alerts at once) for throughput. Chat and PagerDuty sinks are rate
 * limited by design (Slack 1 request/s, Teams 0.5/s, PagerDuty 2/s), so
 * their burst figures show how coalescing keeps up, not a ceiling.
 *
 *   npm run bench:delivery -- [--burst 2000] [--steady 50]
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer as createHttpServer } from 'node:http'
import { createServer as createTcpServer, type Server, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createServer as createTlsServer } from 'node:tls'
import { parseArgs } from 'node:util'
import { randomBytes } from 'node:crypto'
import { createSink, Outbox, type SinkConfig } from '../delivery/index.ts'
import { FleetPki } from '../pki/index.ts'
import { AlertBook } from '../detection/alert-book.ts'
import { createLogger } from '../shared/logger.ts'
import { progressBar, printTable, round, saveResults } from './lib/report.ts'

const { values } = parseArgs({ options: {
  burst: { type: 'string', default: '2000' },
  steady: { type: 'string', default: '50' },
} })
const BURST = Number(values.burst)
const STEADY = Number(values.steady)
const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g

const dir = mkdtempSync(join(tmpdir(), 'placeguard-bench-delivery-'))
const pki = new FleetPki(dir)
await pki.init()
pki.close()

/** When each alert id first reached the receiver. */
type Arrivals = Map<string, number>

interface Receiver { url: string, arrivals: Arrivals, close: () => Promise<void> }

async function httpReceiver (): Promise<Receiver> {
  const arrivals: Arrivals = new Map()
  const server = createHttpServer((request, response) => {
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => chunks.push(chunk))
    request.on('end', () => {
      const at = Date.now()
      // Every format carries the alert id (coalesced chat messages carry several).
      for (const id of Buffer.concat(chunks).toString().match(UUID) ?? []) if (!arrivals.has(id)) arrivals.set(id, at)
      response.writeHead(202).end('{"status":"success"}')
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  return { url: `http://127.0.0.1:${port}/hook`, arrivals, close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }) }
}

async function syslogReceiver (tls: boolean): Promise<Receiver> {
  const arrivals: Arrivals = new Map()
  const onSocket = (socket: Socket): void => {
    let buffer = Buffer.alloc(0)
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk])
      // RFC 5425 octet counting: "<length> <frame>".
      for (;;) {
        const space = buffer.indexOf(0x20)
        if (space < 0) break
        const length = Number(buffer.subarray(0, space).toString())
        if (buffer.length < space + 1 + length) break
        const frame = buffer.subarray(space + 1, space + 1 + length).toString()
        buffer = buffer.subarray(space + 1 + length)
        const id = /alertId="([^"]+)"/.exec(frame)?.[1]
        if (id && !arrivals.has(id)) arrivals.set(id, Date.now())
      }
    })
    socket.on('error', () => {})
  }
  const server: Server = tls
    ? createTlsServer({ cert: readFileSync(pki.paths.serverCert), key: readFileSync(pki.paths.serverKey) }, onSocket)
    : createTcpServer(onSocket)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  return { url: `${tls ? 'tls' : 'tcp'}://127.0.0.1:${port}`, arrivals, close: () => new Promise((resolve) => server.close(() => resolve())) }
}

const secret = `whsec_${randomBytes(32).toString('base64')}`
const SINKS: Array<{ label: string, burst: number, receiver: () => Promise<Receiver>, config: (url: string) => SinkConfig }> = [
  { label: 'webhook', burst: BURST, receiver: httpReceiver, config: (url) => ({ type: 'webhook', url, secrets: [secret], minSeverity: 'info' }) },
  { label: 'syslog tcp', burst: BURST, receiver: () => syslogReceiver(false), config: (url) => ({ type: 'syslog', url, minSeverity: 'info' }) },
  { label: 'syslog tls', burst: BURST, receiver: () => syslogReceiver(true), config: (url) => ({ type: 'syslog', url, ca: pki.paths.caCert, minSeverity: 'info' }) },
  // Rate-limited channels: bursts sized to take ~20–30 s at their documented rates.
  { label: 'slack', burst: Math.min(BURST, 400), receiver: httpReceiver, config: (url) => ({ type: 'slack', url, minSeverity: 'info' }) },
  { label: 'teams', burst: Math.min(BURST, 100), receiver: httpReceiver, config: (url) => ({ type: 'teams', url, minSeverity: 'info' }) },
  { label: 'pagerduty', burst: Math.min(BURST, 60), receiver: httpReceiver, config: (url) => ({ type: 'pagerduty', url, routingKey: 'R0UTINGKEY0000000000000000000000', minSeverity: 'info' }) },
]

const quantile = (values: number[], q: number): number => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(q * values.length))] ?? NaN

async function measure (label: string, receiver: Receiver, outbox: Outbox, count: number, spacingMs: number): Promise<{ latencies: number[], elapsedMs: number, requests: number }> {
  const book = new AlertBook()
  const ids: string[] = []
  const started = Date.now()
  const bar = progressBar(`${label} ${spacingMs ? 'steady' : 'burst'}`, count)
  const before = outbox.metrics()[0]!.attempts
  for (let i = 0; i < count; i++) {
    const change = (await book.raise({ policy: 'identity-clone', deviceId: `flood-${i}`, severity: 'critical', summary: 'the same identity is connected from two places', evidence: { sessions: 2 } }))
    ids.push(change.alert.id)
    outbox.enqueue(change)
    if (spacingMs) await new Promise((resolve) => setTimeout(resolve, spacingMs))
  }
  while (ids.some((id) => !receiver.arrivals.has(id))) {
    bar.update(ids.filter((id) => receiver.arrivals.has(id)).length)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  bar.stop()
  const alerts = new Map((await book.list()).map((alert) => [alert.id, Date.parse(alert.detectedAt)]))
  const latencies = ids.map((id) => receiver.arrivals.get(id)! - alerts.get(id)!)
  return { latencies, elapsedMs: Math.max(...ids.map((id) => receiver.arrivals.get(id)!)) - started, requests: outbox.metrics()[0]!.attempts - before }
}

const rows: Array<Record<string, string | number>> = []
for (const spec of SINKS) {
  const receiver = await spec.receiver()
  const sink = createSink(spec.config(receiver.url))
  const outbox = new Outbox({ path: join(dir, `${spec.label.replace(' ', '-')}.db`), deadLetterAfterMs: 3_600_000, logger: createLogger({ level: 'silent' }), sinks: [{ sink, route: { minSeverity: 'info' } }] })
  outbox.start()
  // Steady means within the channel's rate: one-event-per-request channels (PagerDuty) get an alert per request slot.
  const spacingMs = sink.maxBatch === 1 && sink.ratePerSec ? Math.max(200, 1_100 / sink.ratePerSec) : 200
  const steady = await measure(spec.label, receiver, outbox, STEADY, spacingMs)
  const burst = await measure(spec.label, receiver, outbox, spec.burst, 0)
  await outbox.stop()
  await receiver.close()
  rows.push({
    sink: spec.label, steadyP50Ms: round(quantile(steady.latencies, 0.5)), steadyP99Ms: round(quantile(steady.latencies, 0.99)),
    burst: spec.burst, burstAlertsPerSec: round(spec.burst / (burst.elapsedMs / 1000)), burstP99Ms: round(quantile(burst.latencies, 0.99)),
    burstRequests: burst.requests, ratePerSec: sink.ratePerSec ?? '-',
  })
}
printTable(rows)
process.stdout.write(`results: ${saveResults('delivery', { at: new Date().toISOString(), options: values, rows })}\n`)
rmSync(dir, { recursive: true, force: true })
process.exit(0)
