import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createPagerDutySink } from '../../delivery/pagerduty-sink.ts'
import type { Severity } from '../../policies/index.ts'
import { alertOf, deliveryOf, PRODUCT_FIELDS } from '../helpers/alerts.ts'
import { type HttpReceiver, startHttpReceiver } from '../helpers/http-receiver.ts'

const routingKey = 'R0UT1NGKEY0123456789abcdefabcdef'

let receiver: HttpReceiver
beforeAll(async () => {
  // Events API v2: 202 with the dedup key; 400 for an event it cannot take.
  receiver = await startHttpReceiver((request, _i, response) => {
    const event = JSON.parse(request.body) as { dedup_key: string, payload?: { source: string } }
    if (event.payload?.source === 'bad-device') {
      response.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ status: 'invalid event', message: 'Event object is invalid', errors: [`routing_key ${routingKey} not allowed`] }))
      return
    }
    response.writeHead(202, { 'content-type': 'application/json' }).end(JSON.stringify({ status: 'success', message: 'Event processed', dedup_key: event.dedup_key }))
  })
})
afterAll(() => receiver.stop())

const sinkFor = () => createPagerDutySink({ type: 'pagerduty', routingKey, url: receiver.url, minSeverity: 'info' })
const lastEvent = () => JSON.parse(receiver.requests.at(-1)!.body) as Record<string, unknown> & { payload: Record<string, unknown> }

describe('the PagerDuty sink', () => {
  it('triggers, acknowledges and resolves one incident under one dedup key', async () => {
    const sink = sinkFor()
    const alert = alertOf({ acknowledgedBy: 'alice', resolution: 'by alice' })
    const events = []
    for (const change of ['opened', 'acknowledged', 'resolved'] as const) {
      expect(await sink.send([deliveryOf(alert, change)])).toEqual({ outcome: 'success' })
      events.push(lastEvent())
    }
    const [trigger, acknowledge, resolve] = events
    expect(trigger).toMatchObject({
      routing_key: routingKey, event_action: 'trigger', dedup_key: `placeguard-${alert.id}`, client: 'PlaceGuard',
      payload: {
        summary: `identity-clone on flood-007: ${alert.summary}`, source: 'flood-007', severity: 'critical', timestamp: alert.detectedAt,
        component: 'flood', group: 'riverside', class: 'identity-clone',
        custom_details: { evidence: alert.evidence, stride: 'Spoofing', attack: 'T0849 Masquerading' },
      },
    })
    const carried = (trigger!.payload.custom_details as { alert: Record<string, unknown> }).alert
    for (const field of PRODUCT_FIELDS) expect(carried).toHaveProperty(field, alert[field])
    // Acknowledge and resolve carry only what the Events API reads for them.
    expect(acknowledge).toEqual({ routing_key: routingKey, event_action: 'acknowledge', dedup_key: `placeguard-${alert.id}` })
    expect(resolve).toEqual({ routing_key: routingKey, event_action: 'resolve', dedup_key: `placeguard-${alert.id}` })
  })

  it('maps our five severities onto PagerDuty\'s four and keeps the summary within 1,024 characters', async () => {
    const sink = sinkFor()
    const expected: Record<Severity, string> = { critical: 'critical', high: 'error', medium: 'warning', low: 'info', info: 'info' }
    for (const [ours, theirs] of Object.entries(expected)) {
      await sink.send([deliveryOf(alertOf({ severity: ours as Severity, summary: 'y'.repeat(2_000) }))])
      expect(lastEvent().payload.severity).toBe(theirs)
      expect(String(lastEvent().payload.summary)).toHaveLength(1_024)
    }
  })

  it('reports an invalid event as a failure without revealing the routing key', async () => {
    const result = await sinkFor().send([deliveryOf(alertOf({ deviceId: 'bad-device' }))])
    expect(result).toMatchObject({ outcome: 'failure', error: expect.stringMatching(/^HTTP 400: .*invalid event/) })
    expect(JSON.stringify(result)).not.toContain(routingKey)
    expect(JSON.stringify(result)).toContain('[routing key]')
  })

  it('keeps to PagerDuty\'s 120 events a minute, one event a request', () => {
    expect(sinkFor()).toMatchObject({ type: 'pagerduty', name: 'pagerduty', ratePerSec: 2, maxBatch: 1 })
  })
})
