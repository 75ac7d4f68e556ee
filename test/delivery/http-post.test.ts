import { afterEach, describe, expect, it } from 'vitest'
import { postJson } from '../../delivery/http-post.ts'
import pkg from '../../package.json' with { type: 'json' }
import { type Answer, type HttpReceiver, startHttpReceiver } from '../helpers/http-receiver.ts'

const receivers: HttpReceiver[] = []
afterEach(async () => {
  for (const receiver of receivers.splice(0)) await receiver.stop()
})

async function receiverAnswering (answer: Answer): Promise<HttpReceiver> {
  const receiver = await startHttpReceiver(answer)
  receivers.push(receiver)
  return receiver
}

const post = (url: string, timeoutMs?: number) => postJson(url, '{"a":1}', { 'x-test': 'yes' }, timeoutMs)

describe('postJson', () => {
  it('sends JSON with a PlaceGuard user agent; 2xx is success', async () => {
    const receiver = await receiverAnswering((_req, _i, res) => { res.writeHead(202).end() })
    expect(await post(receiver.url)).toEqual({ outcome: 'success' })
    expect(receiver.requests[0]).toMatchObject({ body: '{"a":1}', headers: { 'content-type': 'application/json', 'user-agent': `PlaceGuard/${pkg.version}`, 'x-test': 'yes' } })
  })

  it('classifies refusals: 500 and 429 retryable (with Retry-After), 400 failure', async () => {
    const retryAt = new Date(Date.now() + 120_000).toUTCString()
    const answers: Array<[number, Record<string, string>]> = [[500, {}], [429, { 'retry-after': '7' }], [503, { 'retry-after': retryAt }], [400, {}]]
    const receiver = await receiverAnswering((_req, i, res) => { res.writeHead(answers[i]![0], answers[i]![1]).end(`answer ${i}`) })

    expect(await post(receiver.url)).toEqual({ outcome: 'retryable', error: 'HTTP 500: answer 0' })
    expect(await post(receiver.url)).toEqual({ outcome: 'retryable', error: 'HTTP 429: answer 1', retryAfterMs: 7_000 })
    const unavailable = await post(receiver.url)
    expect(unavailable).toMatchObject({ outcome: 'retryable', error: 'HTTP 503: answer 2' })
    // An HTTP-date has whole seconds: the delay is just under two minutes.
    expect(unavailable.outcome === 'retryable' && unavailable.retryAfterMs).toBeGreaterThan(100_000)
    expect(unavailable.outcome === 'retryable' && unavailable.retryAfterMs).toBeLessThanOrEqual(120_000)
    expect(await post(receiver.url)).toEqual({ outcome: 'failure', error: 'HTTP 400: answer 3' })
  })

  it('does not follow a redirect: the alert never reaches the other host, and the delivery fails for good', async () => {
    const elsewhere = await receiverAnswering((_req, _i, res) => { res.writeHead(200).end() })
    const redirecting = await receiverAnswering((_req, _i, res) => { res.writeHead(302, { location: elsewhere.url }).end() })
    const result = await post(redirecting.url)
    expect(result).toEqual({ outcome: 'failure', error: 'HTTP 302: redirect not followed; configure the final URL' })
    expect(redirecting.requests).toHaveLength(1)
    expect(elsewhere.requests).toHaveLength(0)
  })

  it('answers retryable when the receiver is down, without naming the URL', async () => {
    const receiver = await receiverAnswering(() => {})
    await receiver.stop()
    const secretUrl = `${receiver.url}/T0001/B0001/s3cretToken`
    const result = await post(secretUrl)
    expect(result).toEqual({ outcome: 'retryable', error: 'connection refused (ECONNREFUSED)' })
  })

  it('answers retryable when the receiver is slower than the timeout', async () => {
    // Never answers; stop() closes the held connection.
    const receiver = await receiverAnswering(() => {})
    const result = await post(receiver.url, 300)
    expect(result).toEqual({ outcome: 'retryable', error: 'timeout: no answer in time' })
    expect(receiver.requests).toHaveLength(1)
  })

  it('keeps the URL out of the error even when the answer echoes it', async () => {
    const receiver = await receiverAnswering((req, _i, res) => { res.writeHead(404).end(`no such hook: ${req.path}`) })
    const secretUrl = `${receiver.url}/T0001/B0001/s3cretToken`
    const result = await post(secretUrl)
    expect(result).toEqual({ outcome: 'failure', error: 'HTTP 404: no such hook: [url]' })
  })
})
