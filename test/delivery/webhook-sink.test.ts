import { randomBytes } from 'node:crypto'
import { Webhook, WebhookVerificationError } from 'standardwebhooks'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createWebhookSink } from '../../delivery/webhook-sink.ts'
import { alertOf, deliveryOf, PRODUCT_FIELDS } from '../helpers/alerts.ts'
import { type HttpReceiver, startHttpReceiver } from '../helpers/http-receiver.ts'

const newSecret = () => `whsec_${randomBytes(32).toString('base64')}`
// Rotation: the old secret still configured next to the new one.
const [oldSecret, currentSecret, unrelatedSecret] = [newSecret(), newSecret(), newSecret()]

let receiver: HttpReceiver
beforeAll(async () => {
  receiver = await startHttpReceiver()
})
afterAll(() => receiver.stop())

/** What a receiver passes to its verifier: the raw body and the headers. */
function verify (secret: string, body: string, headers: Record<string, unknown>): unknown {
  return new Webhook(secret).verify(body, headers as Record<string, string>)
}

describe('the webhook sink', () => {
  it('signs per Standard Webhooks so receivers holding either rotated secret verify, and a tampered body fails', async () => {
    let nowMs = Date.now() - 90_000
    const sink = createWebhookSink({ type: 'webhook', url: receiver.url, secrets: [currentSecret, oldSecret], minSeverity: 'info' }, { clock: { now: () => nowMs } })
    const delivery = deliveryOf(alertOf())
    const first = receiver.requests.length

    expect(await sink.send([delivery])).toEqual({ outcome: 'success' })
    // The outbox retries the same delivery (say the answer was lost) a minute later.
    nowMs += 61_000
    expect(await sink.send([{ ...delivery, attempts: 1 }])).toEqual({ outcome: 'success' })

    const [one, two] = receiver.requests.slice(first)
    for (const request of [one!, two!]) {
      expect(request.headers['webhook-id']).toBe(delivery.id)
      expect(request.headers['content-type']).toBe('application/json')
      expect(String(request.headers['webhook-signature']).split(' ')).toHaveLength(2)
      for (const secret of [oldSecret, currentSecret]) expect(verify(secret, request.body, request.headers)).toEqual(delivery.alert)
      expect(() => verify(unrelatedSecret, request.body, request.headers)).toThrow(WebhookVerificationError)
      const tampered = request.body.replace('"critical"', '"info"')
      expect(tampered).not.toBe(request.body)
      expect(() => verify(currentSecret, tampered, request.headers)).toThrow(WebhookVerificationError)
    }
    // Same id on the retry; timestamp and signatures are this attempt's.
    expect(Number(two!.headers['webhook-timestamp'])).toBe(Number(one!.headers['webhook-timestamp']) + 61)
    expect(two!.headers['webhook-signature']).not.toBe(one!.headers['webhook-signature'])
    // A request replayed with a changed timestamp no longer verifies.
    expect(() => verify(currentSecret, one!.body, { ...one!.headers, 'webhook-timestamp': two!.headers['webhook-timestamp'] })).toThrow(WebhookVerificationError)
  })

  it('sends the alert JSON with every PRODUCT field, and a user agent', async () => {
    const sink = createWebhookSink({ type: 'webhook', url: receiver.url, secrets: [currentSecret], minSeverity: 'info' })
    const delivery = deliveryOf(alertOf({ site: null, severity: 'medium' }), 'acknowledged')
    expect(await sink.send([delivery])).toEqual({ outcome: 'success' })
    const request = receiver.requests.at(-1)!
    const body = JSON.parse(request.body) as Record<string, unknown>
    for (const field of PRODUCT_FIELDS) expect(body).toHaveProperty(field, delivery.alert[field])
    expect(body.status).toBe('acknowledged')
    expect(request.headers['user-agent']).toMatch(/^PlaceGuard\/\d+\.\d+\.\d+/)
    expect(sink).toMatchObject({ type: 'webhook', name: 'webhook', maxBatch: 1, ratePerSec: undefined })
  })

  it('reports a receiver refusal instead of throwing', async () => {
    const refusing = await startHttpReceiver((_req, _i, res) => { res.writeHead(401).end('bad signature') })
    try {
      const sink = createWebhookSink({ type: 'webhook', name: 'soar', url: refusing.url, secrets: [currentSecret], minSeverity: 'info' })
      expect(sink.name).toBe('soar')
      expect(await sink.send([deliveryOf(alertOf())])).toEqual({ outcome: 'failure', error: 'HTTP 401: bad signature' })
    } finally {
      await refusing.stop()
    }
  })
})
