/**
 * Audit entries through the outbox (delivery/outbox.ts): queued beside
 * alert changes, for the sinks that take the trail only, and kept while
 * the syslog receiver is down — every entry arrives, in order, once it is
 * back. The receiver is a real TCP server on loopback reading RFC 5425
 * octet-counted frames.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { SqliteAuditStore } from '../../audit/index.ts'
import { createSink, Outbox, takesAuditTrail, type SinkConfig } from '../../delivery/index.ts'
import { AlertBook } from '../../detection/alert-book.ts'
import { createLogger } from '../../shared/logger.ts'
import { waitFor } from '../helpers/broker.ts'
import { parseCef } from '../helpers/cef.ts'
import { freePort } from '../helpers/free-port.ts'
import { startHttpReceiver } from '../helpers/http-receiver.ts'

const cleanup: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step()
})

/** A syslog receiver: each octet-counted frame's message, in arrival order. */
function syslogReceiver (port: number): Promise<{ frames: string[], server: Server }> {
  const frames: string[] = []
  const server = createServer((socket) => {
    let buffered = Buffer.alloc(0)
    socket.on('data', (chunk) => {
      buffered = Buffer.concat([buffered, chunk])
      for (;;) {
        const space = buffered.indexOf(0x20)
        if (space < 0) return
        const length = Number(buffered.subarray(0, space).toString('ascii'))
        if (buffered.length < space + 1 + length) return
        frames.push(buffered.subarray(space + 1, space + 1 + length).toString('utf8'))
        buffered = buffered.subarray(space + 1 + length)
      }
    })
  })
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve({ frames, server })))
}

describe('audit entries in the outbox', () => {
  it('reach a syslog sink that was down, every one and in order; not a webhook, nor a syslog sink with audit: false', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'placeguard-audit-outbox-'))
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }))
    const port = await freePort()
    const quietPort = await freePort()
    const webhook = await startHttpReceiver()
    cleanup.push(() => webhook.stop())
    const configs: SinkConfig[] = [
      { type: 'syslog', name: 'siem', url: `tcp://127.0.0.1:${port}`, minSeverity: 'info' },
      { type: 'syslog', name: 'alerts-only', url: `tcp://127.0.0.1:${quietPort}`, minSeverity: 'info', audit: false },
      { type: 'webhook', url: webhook.url, secrets: [`whsec_${Buffer.alloc(24, 7).toString('base64')}`], minSeverity: 'info' },
    ]
    const outbox = new Outbox({
      path: join(dir, 'outbox.db'), deadLetterAfterMs: 3_600_000, logger: createLogger({ level: 'silent' }), baseBackoffMs: 100, maxBackoffMs: 500,
      sinks: configs.map((config) => ({ sink: createSink(config), route: { minSeverity: 'info', audit: takesAuditTrail(config) } })),
    })
    const quiet = await syslogReceiver(quietPort)
    cleanup.push(() => new Promise<void>((resolve) => quiet.server.close(() => resolve())))
    outbox.start()

    // The SIEM is down: entries and an alert change are queued, and retried.
    const trail = new SqliteAuditStore({ path: join(dir, 'audit.db') })
    cleanup.push(() => trail.close())
    const entries = Array.from({ length: 5 }, (_, i) => trail.append({ actor: 'operator:3f2a1b0c', action: 'alert.comment', subject: `alr-${i}`, detail: { text: `note ${i}` }, from: '127.0.0.1' }))
    expect(outbox.enqueueAudit(entries[0]!)).toBe(1)
    const change = await new AlertBook().raise({ policy: 'acl-violation', deviceId: 'flood-001', severity: 'high', summary: 'publish outside own topic', evidence: {} }, { site: 'riverside', kind: 'flood' })
    expect(outbox.enqueue(change)).toBe(3)
    for (const entry of entries.slice(1)) outbox.enqueueAudit(entry)
    // Queued again (the CLI and the collector, say): the same delivery id, queued once.
    outbox.enqueueAudit(entries[4]!)
    await waitFor(() => outbox.metrics().find((m) => m.sink === 'siem')!.retries > 0, 10_000, 'a failed attempt at the SIEM')
    expect(outbox.metrics().find((m) => m.sink === 'siem')).toMatchObject({ pending: 6, delivered: 0 })

    const siem = await syslogReceiver(port)
    cleanup.push(() => new Promise<void>((resolve) => siem.server.close(() => resolve())))
    // Stopped first: the servers close once the sinks' connections are gone.
    cleanup.push(() => outbox.stop())
    await waitFor(() => siem.frames.length >= 6, 20_000, 'everything at the SIEM')
    await waitFor(() => quiet.frames.length >= 1 && webhook.requests.length >= 1, 10_000, 'the alert at the other sinks')
    expect(siem.frames).toHaveLength(6)
    const cef = siem.frames.map((frame) => parseCef(frame.slice(frame.indexOf('CEF:'))))
    expect(cef.map(({ header, extension }) => header[4] === 'acl-violation' ? 'alert' : extension.get('cn1'))).toEqual(['1', 'alert', '2', '3', '4', '5'])
    expect(cef.filter(({ header }) => header[4] !== 'acl-violation').map(({ extension }) => extension.get('cs1'))).toEqual(entries.map((e) => e.hash))
    // The others had the alert alone.
    expect(quiet.frames).toHaveLength(1)
    expect(quiet.frames[0]).toContain('|acl-violation|')
    expect(webhook.requests).toHaveLength(1)
  }, 60_000)
})
