/**
 * Generic webhook, signed per Standard Webhooks (standardwebhooks.com,
 * "Signature scheme"): the body is the alert JSON; `webhook-id` is the
 * delivery id, the same on every retry so the receiver can deduplicate;
 * `webhook-timestamp` is this attempt's time, so a receiver can refuse a
 * replayed request (STRIDE S/T); `webhook-signature` carries one
 * `v1,<base64 HMAC-SHA256>` per configured secret, so during a rotation a
 * receiver holding either the old or the new secret verifies.
 */
import { createHmac } from 'node:crypto'
import type { SinkConfigOf } from './config.ts'
import { type Clock, systemClock } from '../shared/clock.ts'
import { DEFAULT_TIMEOUT_MS, type HttpSinkOptions, postJson, sendEach } from './http-post.ts'
import { jsonWithEscapedFormatCharacters } from './shown-alert.ts'
import type { Delivery, Sink } from './sink.ts'

export interface WebhookSinkOptions extends HttpSinkOptions {
  /** Source of `webhook-timestamp`. */
  clock?: Clock
}

export function createWebhookSink (config: SinkConfigOf<'webhook'>, options: WebhookSinkOptions = {}): Sink {
  // The spec's secret is `whsec_` + base64 of the key bytes.
  const keys = config.secrets.map((secret) => Buffer.from(secret.slice('whsec_'.length), 'base64'))
  const clock = options.clock ?? systemClock
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS

  function sendOne (delivery: Delivery) {
    const body = jsonWithEscapedFormatCharacters(delivery.alert)
    const timestamp = Math.floor(clock.now() / 1000)
    return postJson(config.url, body, webhookHeaders(keys, delivery.id, timestamp, body), timeoutMs)
  }

  return {
    type: 'webhook',
    name: config.name ?? config.type,
    maxBatch: 1,
    ratePerSec: undefined,
    send: (deliveries) => sendEach(deliveries, sendOne),
    close: async () => {},
  }
}

/** The three Standard Webhooks headers; signed content is `${id}.${timestamp}.${body}`. */
function webhookHeaders (keys: Buffer[], id: string, timestamp: number, body: string): Record<string, string> {
  const content = `${id}.${timestamp}.${body}`
  const signatures = keys.map((key) => `v1,${createHmac('sha256', key).update(content).digest('base64')}`)
  return { 'webhook-id': id, 'webhook-timestamp': String(timestamp), 'webhook-signature': signatures.join(' ') }
}
