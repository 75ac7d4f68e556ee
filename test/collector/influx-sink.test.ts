import { createServer, type Server } from 'node:http'
import { gunzipSync } from 'node:zlib'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createInfluxSink } from '../../collector/influx-sink.ts'
import type { StoredPoint } from '../../collector/stored-point.ts'
import { startVictoriaMetrics, type RunningVictoriaMetrics } from '../helpers/victoria-metrics.ts'

const TOKEN = 'pg-test-token-5f2a9c'
const NOW = Date.now()

function floodPoint (device: string, seq: number): StoredPoint {
  return { measurement: 'flood', tags: { site: 'riverside', device }, fields: { level_cm: 40 + seq / 2, battery_v: 3.7, seq, fw: '1.2.3' }, timestampMs: NOW - 60_000 + seq }
}

function sinkFor (url: string, token = TOKEN): ReturnType<typeof createInfluxSink> {
  return createInfluxSink({ url, token, org: 'placeguard', bucket: 'telemetry', timeoutMs: 2_000 })
}

/** A store that answers each write with the next status in line, and records what it was sent. */
async function scriptedStore (responses: Array<{ status: number, headers?: Record<string, string>, body?: string }>): Promise<{ url: string, server: Server, requests: Array<{ headers: Record<string, unknown>, body: string }> }> {
  const requests: Array<{ headers: Record<string, unknown>, body: string }> = []
  const server = createServer((request, response) => {
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => chunks.push(chunk))
    request.on('end', () => {
      const raw = Buffer.concat(chunks)
      requests.push({ headers: request.headers, body: (request.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw).toString() })
      const next = responses.shift() ?? { status: 204 }
      response.writeHead(next.status, next.headers).end(next.body)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address() as { port: number }
  return { url: `http://127.0.0.1:${address.port}`, server, requests }
}

describe('InfluxDB sink, against victoria-metrics', () => {
  let store: RunningVictoriaMetrics
  beforeAll(async () => { store = await startVictoriaMetrics() })
  afterAll(async () => { await store.stop() })

  it('writes points with the docs/product.md schema: measurement = kind, tags site and device, readings + seq + fw', async () => {
    const sink = sinkFor(store.url)
    const points = [floodPoint('flood-001', 1), floodPoint('flood-001', 2), floodPoint('flood-002', 1)]
    expect(await sink.write(points)).toEqual({ outcome: 'success' })
    await sink.close()

    const series = await store.exportSeries('{__name__=~"flood_.*"}')
    const names = new Set(series.map((s) => s.metric.__name__))
    expect(names).toEqual(new Set(['flood_level_cm', 'flood_battery_v', 'flood_seq', 'flood_fw']))
    for (const s of series) expect(Object.keys(s.metric).sort()).toEqual(['__name__', 'device', 'site'])
    const seq = series.find((s) => s.metric.__name__ === 'flood_seq' && s.metric.device === 'flood-001')!
    expect(seq.metric.site).toBe('riverside')
    expect(seq.values).toEqual([1, 2])
    expect(seq.timestamps).toEqual([NOW - 60_000 + 1, NOW - 60_000 + 2]) // ms precision kept
    const level = series.find((s) => s.metric.__name__ === 'flood_level_cm' && s.metric.device === 'flood-002')!
    expect(level.values).toEqual([40.5])
  })

  it('answers 401 from a store that wants other credentials as a failure naming PLACEGUARD_INFLUX_TOKEN, without the token', async () => {
    const guarded = await startVictoriaMetrics({ extraArgs: ['-httpAuth.username=u', '-httpAuth.password=p'] })
    try {
      const result = await sinkFor(guarded.url).write([floodPoint('flood-001', 1)])
      expect(result).toMatchObject({ outcome: 'failure', status: 401 })
      const error = (result as { error: string }).error
      expect(error).toContain('PLACEGUARD_INFLUX_TOKEN')
      expect(error).not.toContain(TOKEN)
    } finally {
      await guarded.stop()
    }
  })
})

describe('InfluxDB sink, store unreachable or answering errors', () => {
  let servers: Server[] = []
  afterEach(async () => {
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))))
    servers = []
  })

  it('reports a store that is down as retryable', async () => {
    const down = await startVictoriaMetrics()
    await down.stop() // its port now refuses connections
    const result = await sinkFor(down.url).write([floodPoint('flood-001', 1)])
    expect(result).toMatchObject({ outcome: 'retryable', error: expect.stringContaining('ECONNREFUSED') })
  })

  it('reports 500 as retryable, then success once the store answers 204; the body is gzipped line protocol', async () => {
    const store = await scriptedStore([{ status: 500, body: 'internal error' }, { status: 204 }])
    servers.push(store.server)
    const sink = sinkFor(store.url)
    const points = Array.from({ length: 20 }, (_, i) => floodPoint('flood-001', i))
    expect(await sink.write(points)).toMatchObject({ outcome: 'retryable', error: expect.stringContaining('500') })
    expect(await sink.write(points)).toEqual({ outcome: 'success' })
    await sink.close()

    const sent = store.requests[1]!
    expect(sent.headers['content-encoding']).toBe('gzip')
    expect(sent.headers.authorization).toBe(`Token ${TOKEN}`)
    expect(sent.body.split('\n')[3]).toBe(`flood,device=flood-001,site=riverside battery_v=3.7,fw="1.2.3",level_cm=41.5,seq=3i ${NOW - 60_000 + 3}000000`) // ns precision
  })

  it('abandons a write the store does not answer within timeoutMs, as retryable', async () => {
    const silent = createServer(() => { /* never answers */ })
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
    servers.push(silent)
    const sink = createInfluxSink({ url: `http://127.0.0.1:${(silent.address() as { port: number }).port}`, token: TOKEN, org: 'o', bucket: 'b', timeoutMs: 300 })
    const started = Date.now()
    expect(await sink.write([floodPoint('flood-001', 1)])).toMatchObject({ outcome: 'retryable', error: expect.stringContaining('did not answer within 300 ms') })
    expect(Date.now() - started).toBeLessThan(2_000)
    await sink.close()
    silent.closeAllConnections()
  })

  it('classifies 429, 404 and 400 as an operator needs', async () => {
    const store = await scriptedStore([
      { status: 429, headers: { 'retry-after': '3' } },
      { status: 404, headers: { 'content-type': 'application/json' }, body: '{"code":"not found","message":"bucket \\"telemetry\\" not found"}' },
      { status: 400, headers: { 'content-type': 'application/json' }, body: '{"code":"invalid","message":"unable to parse points"}' },
    ])
    servers.push(store.server)
    const sink = sinkFor(store.url)
    const point = [floodPoint('flood-001', 1)]
    expect(await sink.write(point)).toMatchObject({ outcome: 'retryable', retryAfterMs: 3_000 })
    expect(await sink.write(point)).toMatchObject({ outcome: 'failure', status: 404, error: expect.stringMatching(/bucket "telemetry" in org "placeguard".*PLACEGUARD_INFLUX_BUCKET/) })
    expect(await sink.write(point)).toMatchObject({ outcome: 'failure', status: 400, error: expect.stringContaining('unable to parse points') })
    await sink.close()
  })
})
