/**
 * A security event whose publish fails: an error in service (and the event
 * is held to be sent again: events-disk-full.test.ts), a debug line when
 * the broker was closing (aedes closes its emitter under a publish
 * already under way). Either way the event was logged and handed to
 * in-process listeners first.
 */
import { Writable } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { createEventReporter, type EventPublisher } from '../../broker/event-reporter.ts'
import type { SecurityEvent } from '../../shared/security-events.ts'
import { createLogger } from '../../shared/logger.ts'

/** aedes' publish, as far as the reporter uses it: fails like a closed mqemitter, after `close` ran. */
function closingPublisher (closeFirst: boolean): EventPublisher {
  const publisher = {
    closed: false,
    publish (_packet: unknown, done: (error?: Error) => void) {
      if (closeFirst) publisher.closed = true
      setImmediate(() => done(new Error('mqemitter is closed')))
    },
  }
  return publisher as unknown as EventPublisher
}

async function report (closeFirst: boolean): Promise<{ lines: Array<{ level: number, msg: string }>, delivered: SecurityEvent[] }> {
  const lines: Array<{ level: number, msg: string }> = []
  const logger = createLogger({ level: 'debug', destination: new Writable({ write (chunk, _encoding, done) { lines.push(JSON.parse(String(chunk))); done() } }) })
  const delivered: SecurityEvent[] = []
  const publisher = closingPublisher(closeFirst)
  const reportEvent = createEventReporter({ clock: { now: () => Date.parse('2026-12-01T12:00:00Z') }, logger, deliver: (event) => delivered.push(event), publisher: () => publisher })
  reportEvent('disconnect', { deviceId: 'flood-1', reason: 'closed' })
  await new Promise((resolve) => setTimeout(resolve, 20))
  return { lines, delivered }
}

describe('security events that cannot be published', () => {
  it('are an error while the broker serves', async () => {
    const { lines, delivered } = await report(false)
    expect(delivered.map((event) => event.type)).toEqual(['disconnect'])
    expect(lines.filter((line) => line.msg.startsWith('security events not published; held'))).toEqual([expect.objectContaining({ level: 50 })])
  })

  it('are a debug line when the broker was closing, after the event was logged and delivered', async () => {
    const { lines, delivered } = await report(true)
    expect(delivered.map((event) => event.type)).toEqual(['disconnect'])
    expect(lines.some((line) => line.msg === 'security event: disconnect')).toBe(true)
    expect(lines.filter((line) => line.level >= 50)).toEqual([])
    expect(lines.filter((line) => line.msg.startsWith('security event not published'))).toEqual([expect.objectContaining({ level: 20 })])
  })
})
