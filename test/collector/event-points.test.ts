/**
 * Every security event is its own point, in InfluxDB (here victoria-metrics)
 * and in the embedded store alike, and device-supplied strings cannot inject
 * a point or a field into line protocol (STRIDE T).
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { SecurityEvent } from '../../broker/index.ts'
import { EmbeddedStore } from '../../collector/embedded-store.ts'
import { createInfluxSink } from '../../collector/influx-sink.ts'
import { securityEventPoint } from '../../collector/points.ts'
import { Spool } from '../../collector/spool.ts'
import { toLineProtocol, type StoredPoint } from '../../collector/stored-point.ts'
import { startVictoriaMetrics, type RunningVictoriaMetrics } from '../helpers/victoria-metrics.ts'

let store: RunningVictoriaMetrics
let dir: string

beforeAll(async () => {
  store = await startVictoriaMetrics()
  dir = mkdtempSync(join(tmpdir(), 'pg-event-points-'))
})

afterAll(async () => {
  await store?.stop()
  rmSync(dir, { recursive: true, force: true })
})

/** Through the spool (where points get their identity) and out again, as the store writer sees them. */
function spooled (name: string, points: StoredPoint[]): StoredPoint[] {
  const spool = new Spool({ path: join(dir, `${name}.db`), maxBytes: 100_000_000 })
  try {
    spool.append(points)
    return spool.peek(100_000)!.points
  } finally {
    spool.close()
  }
}

describe('security event points', () => {
  it('keeps 300 refused handshakes of one millisecond as 300 points, in victoria-metrics and in the embedded store', async () => {
    const at = new Date(Date.now() - 1_000).toISOString()
    const events: SecurityEvent[] = Array.from({ length: 300 }, (_, i) => ({
      type: 'tls-rejected', at, reason: 'TLS handshake failed: certificate signature failure', code: 'TLS_ERROR', remoteAddress: `127.0.0.1:${40_000 + i}`,
    }) as SecurityEvent)
    const points = spooled('burst', events.map(securityEventPoint))
    expect(new Set(points.map(toLineProtocol).map((line) => line.split(' ').at(-1))).size).toBe(300)

    const sink = createInfluxSink({ url: store.url, token: 't', org: 'council', bucket: 'telemetry' })
    expect(await sink.write(points)).toEqual({ outcome: 'success' })
    await sink.close()
    const series = await store.exportSeries('{__name__="security_event_count",type="tls-rejected"}')
    expect(series.reduce((sum, s) => sum + s.values.length, 0)).toBe(300)

    const embedded = new EmbeddedStore({ path: join(dir, 'telemetry.db') })
    expect(await embedded.write(points)).toEqual({ outcome: 'success' })
    expect(await embedded.write(points)).toEqual({ outcome: 'success' }) // a retried batch is the same 300 points
    expect(embedded.count('security_event')).toBe(300)
    await embedded.close()
  })

  it('writes device strings with line breaks, quotes, backslashes, commas, equals signs and spaces without injecting a point or a field', async () => {
    const nasty = 'x\ny,evil=1 z="q" \\ a=b\r\nsecurity_event,type=forged count=99i 1\\'
    const event = { type: 'acl-denied', at: new Date(Date.now() - 2_000).toISOString(), claimedId: nasty, reason: nasty, topic: nasty, remoteAddress: '127.0.0.1:1' } as SecurityEvent
    const [point] = spooled('nasty', [securityEventPoint(event)])
    const line = toLineProtocol(point!)
    expect(line).not.toMatch(/[\r\n]/)

    const sink = createInfluxSink({ url: store.url, token: 't', org: 'council', bucket: 'telemetry' })
    expect(await sink.write([point!])).toEqual({ outcome: 'success' })
    await sink.close()
    const names = (await store.exportSeries('{__name__=~"security_event_.*"}')).map((s) => s.metric)
    // Only this event's fields, under its own tags; nothing "forged", no "evil" label or field.
    const ours = names.filter((metric) => metric.type === 'acl-denied')
    expect(ours.map((metric) => metric.__name__).sort()).toEqual(['security_event_count', 'security_event_reason', 'security_event_remote_address', 'security_event_topic'])
    expect(names.some((metric) => metric.type === 'forged' || 'evil' in metric || /evil/.test(metric.__name__ ?? ''))).toBe(false)
    // The tag survives whole: line breaks as the visible two characters \n and \r.
    expect(ours[0]!.device).toBe(`claimed:${nasty.replaceAll('\r', '\\r').replaceAll('\n', '\\n')}`)
  })
})
