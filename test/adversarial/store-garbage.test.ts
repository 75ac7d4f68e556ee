/**
 * The store returning garbage: a loopback server on InfluxDB's write
 * endpoint that answers with random bytes, an HTML 200, a truncated
 * response, a 204 only after 30 s, or a connection reset. The pipeline
 * (spool → store writer → InfluxDB sink) keeps running, says what was
 * wrong each time, forgets nothing, and stores everything once a real
 * store (victoria-metrics) is behind the URL.
 */
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createInfluxSink } from '../../collector/influx-sink.ts'
import { Spool } from '../../collector/spool.ts'
import type { PointSink } from '../../collector/stored-point.ts'
import { StoreWriter } from '../../collector/store-writer.ts'
import { waitFor } from '../helpers/broker.ts'
import { startVictoriaMetrics, type RunningVictoriaMetrics } from '../helpers/victoria-metrics.ts'

const MODES = ['random-bytes', 'html-200', 'truncated', 'slow-204', 'reset'] as const
type Mode = typeof MODES[number]

/** Raw TCP, so the answers can be anything, not only what an HTTP server library would send. */
function garbageServer (): { server: Server, served: Map<Mode, number>, listening: Promise<number> } {
  const served = new Map<Mode, number>()
  let next = 0
  const server = createServer((socket) => {
    socket.on('error', () => {})
    socket.once('data', () => {
      const mode = MODES[next++ % MODES.length]!
      served.set(mode, (served.get(mode) ?? 0) + 1)
      if (mode === 'random-bytes') socket.end(randomBytes(512))
      else if (mode === 'html-200') socket.end('HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: 43\r\nconnection: close\r\n\r\n<html><body>Welcome to nginx!</body></html>')
      else if (mode === 'truncated') socket.end('HTTP/1.1 204 No Con')
      else if (mode === 'slow-204') setTimeout(() => socket.end('HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n'), 30_000).unref()
      else socket.resetAndDestroy()
    })
  })
  const listening = new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)))
  return { server, served, listening }
}

let store: RunningVictoriaMetrics
let dir: string

beforeAll(async () => {
  store = await startVictoriaMetrics()
  dir = mkdtempSync(join(tmpdir(), 'pg-store-garbage-'))
})

afterAll(async () => {
  await store?.stop()
  rmSync(dir, { recursive: true, force: true })
})

describe('a store that answers garbage', () => {
  it('keeps every point through random bytes, an HTML 200, a truncated answer, a 30 s stall and resets, then stores them all', async () => {
    const garbage = garbageServer()
    const port = await garbage.listening
    const options = { token: 'secret-token', org: 'council', bucket: 'telemetry', timeoutMs: 2_000 }
    let sink: PointSink = createInfluxSink({ url: `http://127.0.0.1:${port}`, ...options })
    const errors: string[] = []
    const spool = new Spool({ path: join(dir, 'spool.db'), maxBytes: 10_000_000 })
    const since = Date.now() - 60_000
    spool.append(Array.from({ length: 200 }, (_, i) => ({
      measurement: 'flood', tags: { site: 'riverside', device: `flood-${i % 10}` },
      fields: { seq: i, fw: '1.2.0', level_cm: 40, battery_v: 3.6 }, timestampMs: since + i,
    })))
    const writer = new StoreWriter({
      spool, sink: { write: (points) => sink.write(points) }, baseDelayMs: 20, maxDelayMs: 100,
      onError: (message) => errors.push(message),
    })
    writer.start()
    try {
      await waitFor(() => MODES.every((mode) => (garbage.served.get(mode) ?? 0) >= 2), 60_000, 'every kind of garbage served twice')
      // Nothing left the spool: no answer above was a store that took the points.
      expect(spool.pendingPoints).toBe(200)
      expect(writer.counters.written).toBe(0)
      const log = errors.join('\n')
      expect(log).toMatch(/answered the write with 200 \(text\/html\), not InfluxDB's 204/)
      expect(log).toMatch(/did not answer within 2000 ms/)
      expect(log).toMatch(/ECONNRESET/)
      expect(log).toMatch(/HPE_|Parse Error|socket hang up/i)
      expect(log).not.toContain('secret-token')
      // A real store comes back behind the URL: everything lands, once.
      await sink.close()
      sink = createInfluxSink({ url: store.url, ...options })
      await waitFor(() => spool.pendingPoints === 0, 30_000, 'the spool to drain into the real store')
      const series = await store.exportSeries('{__name__="flood_seq"}')
      const stored = new Set(series.flatMap((s) => s.values))
      expect(stored.size).toBe(200)
    } finally {
      await writer.stop()
      await sink.close()
      spool.close()
      garbage.server.close()
    }
  }, 120_000)
})
