/**
 * Writes batches of points to InfluxDB 2.x (`/api/v2/write`, line protocol,
 * ns precision, so events of one millisecond stay apart) and says what
 * happened to each batch; it never throws and
 * never retries: the spool keeps the points and the store writer decides.
 *
 * It sends through the client's Transport rather than its WriteApi: the
 * WriteApi splits a batch into background POSTs whose failures `flush()`
 * does not report, logs to the console, and reads Retry-After as
 * milliseconds. One `request` per batch gives one status per batch.
 */
import http from 'node:http'
import https from 'node:https'
import { HttpError, InfluxDB } from '@influxdata/influxdb-client'
import { toLineProtocol, type PointSink, type StoredPoint, type WriteResult } from './stored-point.ts'

export type { WriteResult } from './stored-point.ts'

export interface InfluxSinkOptions {
  /** Base URL of InfluxDB, e.g. `http://localhost:8086` (PLACEGUARD_INFLUX_URL). */
  url: string
  /** API token with write access to the bucket (PLACEGUARD_INFLUX_TOKEN); never in a message. */
  token: string
  /** Organisation name or id (PLACEGUARD_INFLUX_ORG). */
  org: string
  /** Destination bucket (PLACEGUARD_INFLUX_BUCKET). */
  bucket: string
  /** Longest one write may take before it is abandoned as retryable; default 10 s. */
  timeoutMs?: number
  /** Request bodies larger than this many bytes are gzipped; default 1000. */
  gzipThreshold?: number
}

const MAX_DETAIL_CHARS = 300

export function createInfluxSink (options: InfluxSinkOptions): PointSink {
  const { token, org, bucket, timeoutMs = 10_000, gzipThreshold = 1_000 } = options
  // Own agent, so that close() releases the keep-alive connections.
  const agent = options.url.startsWith('https:') ? new https.Agent({ keepAlive: true }) : new http.Agent({ keepAlive: true })
  const transport = new InfluxDB({ url: options.url, token, timeout: timeoutMs, transportOptions: { agent } }).transport
  const path = `/api/v2/write?${new URLSearchParams({ org, bucket, precision: 'ns' })}`
  const where = { origin: new URL(options.url).origin, org, bucket }
  // Defence in depth: a server or proxy that echoes the Authorization header must not put the token in a log.
  const redact = (text: string): string => (token ? text.replaceAll(token, '[redacted]') : text).slice(0, MAX_DETAIL_CHARS)
  const closing = new AbortController()

  return {
    async write (points: StoredPoint[]): Promise<WriteResult> {
      if (closing.signal.aborted) return { outcome: 'failure', error: 'the InfluxDB sink is closed' }
      if (points.length === 0) return { outcome: 'success' }
      let body: string
      try {
        body = points.map(toLineProtocol).join('\n')
      } catch (error) {
        return { outcome: 'failure', error: `a point cannot be written as line protocol: ${(error as Error).message}` }
      }
      // Retrying after a timeout is safe: InfluxDB overwrites a point with the same measurement, tags and time.
      const signal = AbortSignal.any([closing.signal, AbortSignal.timeout(timeoutMs)])
      try {
        let status = 0
        let contentType = ''
        await transport.request(path, body, { method: 'POST', headers: { 'content-type': 'text/plain; charset=utf-8' }, gzipThreshold, signal }, (headers, statusCode) => {
          status = statusCode ?? 0
          contentType = String(headers['content-type'] ?? 'no content type')
        })
        // InfluxDB answers a write it has taken with 204 and nothing else; any
        // other 2xx (a captive portal's HTML, a proxy's page) did not store
        // the points, and forgetting them would lose them.
        if (status !== 204) return { outcome: 'retryable', error: `${where.origin} answered the write with ${status} (${redact(contentType)}), not InfluxDB's 204: is PLACEGUARD_INFLUX_URL an InfluxDB?` }
        return { outcome: 'success' }
      } catch (error) {
        if (signal.aborted && !closing.signal.aborted) return { outcome: 'retryable', error: `InfluxDB at ${where.origin} did not answer within ${timeoutMs} ms` }
        return classify(error, where, redact)
      }
    },
    async close (): Promise<void> {
      closing.abort()
      agent.destroy()
    },
  }
}

function classify (error: unknown, where: { origin: string, org: string, bucket: string }, redact: (text: string) => string): WriteResult {
  if (!(error instanceof HttpError)) {
    const { message, code } = error as { message?: string, code?: string }
    return { outcome: 'retryable', error: `cannot reach InfluxDB at ${where.origin}: ${redact(code ?? message ?? String(error))}` }
  }
  const status = error.statusCode
  // The client's message is the JSON body's `message` when there is one, else "<status> <text> : <body>".
  const detail = redact(error.message.startsWith(String(status)) ? error.message : `${status} ${error.message}`)
  if (status === 429 || status >= 500) {
    const retryAfterMs = parseRetryAfter(error.headers?.['retry-after'])
    return { outcome: 'retryable', error: `InfluxDB at ${where.origin} answered ${detail}`, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) }
  }
  if (status === 401 || status === 403) {
    return {
      outcome: 'failure', status,
      error: `InfluxDB at ${where.origin} refused the token (${status}): set PLACEGUARD_INFLUX_TOKEN to a token that may write to bucket "${where.bucket}" in org "${where.org}"`,
    }
  }
  if (status === 404) {
    return {
      outcome: 'failure', status,
      error: `InfluxDB at ${where.origin} has no bucket "${where.bucket}" in org "${where.org}" (${detail}): check PLACEGUARD_INFLUX_BUCKET and PLACEGUARD_INFLUX_ORG`,
    }
  }
  return { outcome: 'failure', status, error: `InfluxDB at ${where.origin} rejected the batch: ${detail}` }
}

/** Retry-After is delay-seconds or an HTTP-date (RFC 9110 §10.2.3); the client library reads it as milliseconds. */
function parseRetryAfter (header: string | string[] | undefined): number | undefined {
  const value = Array.isArray(header) ? header[0] : header
  if (value === undefined || value.trim() === '') return undefined
  if (/^\d+$/.test(value.trim())) return Number(value) * 1000
  const at = Date.parse(value)
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now())
}
