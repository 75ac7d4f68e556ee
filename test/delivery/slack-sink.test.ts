import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Delivery } from '../../delivery/index.ts'
import { createSlackSink, type SlackMessage, slackMessage } from '../../delivery/slack-sink.ts'
import { alertOf, deliveryOf } from '../helpers/alerts.ts'
import { type HttpReceiver, soleRequestBody, startHttpReceiver } from '../helpers/http-receiver.ts'

let receiver: HttpReceiver
beforeAll(async () => {
  receiver = await startHttpReceiver()
})
afterAll(() => receiver.stop())

/** Sends through a real sink and returns the one message Slack received. */
async function received (deliveries: Delivery[]): Promise<{ raw: string, message: SlackMessage }> {
  const raw = await soleRequestBody(receiver, createSlackSink({ type: 'slack', url: receiver.url, minSeverity: 'info' }), deliveries)
  const message = JSON.parse(raw) as SlackMessage
  expectValidBlockKit(message)
  return { raw, message }
}

/** Block Kit limits Slack enforces with `invalid_blocks` (api.slack.com/reference/block-kit). */
function expectValidBlockKit (message: SlackMessage): void {
  expect(message.text.length).toBeGreaterThan(0)
  expect(message.blocks.length).toBeGreaterThan(0)
  expect(message.blocks.length).toBeLessThanOrEqual(50)
  for (const block of message.blocks) {
    expect(['header', 'section', 'context']).toContain(block.type)
    if (block.type === 'header') {
      expect(block.text.type).toBe('plain_text')
      expect(block.text.text.length).toBeLessThanOrEqual(150)
    }
    if (block.type === 'section') {
      expect(block.text.text.length).toBeLessThanOrEqual(3000)
      for (const field of block.fields ?? []) expect(field.text.length).toBeLessThanOrEqual(2000)
      expect((block.fields ?? []).length).toBeLessThanOrEqual(10)
    }
    if (block.type === 'context') expect(block.elements.length).toBeLessThanOrEqual(10)
  }
}

const textsOf = (message: SlackMessage) => message.blocks.flatMap((block) =>
  block.type === 'context' ? block.elements : block.type === 'section' ? [block.text, ...(block.fields ?? [])] : [block.text])

describe('the Slack sink', () => {
  it('sends one readable Block Kit message for a new alert', async () => {
    const alert = alertOf({ summary: 'x'.repeat(5_000) })
    const { message } = await received([deliveryOf(alert)])
    expect(message.blocks.map((b) => b.type)).toEqual(['header', 'section', 'context'])
    expect(message.blocks[0]).toMatchObject({ text: { text: '🔴 Critical: identity-clone' } })
    const all = textsOf(message).map((t) => t.text).join('\n')
    for (const shown of ['flood-007', 'riverside', 'flood', 'open', 'firstAddress=10.0.0.5', 'T0849 Masquerading', alert.id]) expect(all).toContain(shown)
    // The 5,000-character summary is cut to Slack's 3,000 with an ellipsis.
    expect(message.blocks[1]).toMatchObject({ type: 'section', text: { text: expect.stringMatching(/x…$/) } })
    expect(message.text).toMatch(/^New critical alert identity-clone on flood-007: x+…$/)
  })

  it('sends an acknowledgement or a resolution as a short message of its own', async () => {
    const alert = alertOf({ acknowledgedBy: 'alice' })
    const { message: ack } = await received([deliveryOf(alert, 'acknowledged')])
    expect(ack.blocks.map((b) => b.type)).toEqual(['section', 'context'])
    expect(textsOf(ack)[0]!.text).toMatch(/^👀 \*Acknowledged\* .*identity-clone\* on \*flood-007\* — alice\nflood-007 is connected/)
    expect(textsOf(ack).map((t) => t.text).join('\n')).toContain(`riverside · flood · acknowledged · <!date^`)
    const { message: resolved } = await received([deliveryOf({ ...alert, resolution: 'by bob' }, 'resolved')])
    expect(textsOf(resolved)[0]!.text).toMatch(/^✅ \*Resolved\* .* — by bob\n/)
    expect(textsOf(resolved).map((t) => t.text).join('\n')).toContain('Evidence: firstAddress=10.0.0.5')
  })

  it('coalesces a backlog of 30 changes into one message within 50 blocks, every alert in it', async () => {
    const deliveries = Array.from({ length: 30 }, (_, i) => deliveryOf(alertOf({ deviceId: `energy-${i}` }), i % 3 === 2 ? 'resolved' : 'opened'))
    const { message } = await received(deliveries)
    expect(message.blocks).toHaveLength(31)
    expect(message.blocks[0]).toMatchObject({ type: 'header', text: { text: '30 PlaceGuard alert changes' } })
    const all = textsOf(message).map((t) => t.text).join('\n')
    for (const { alert } of deliveries) expect(all).toContain(alert.id)
    expect(message.text).toBe('30 PlaceGuard alert changes: 20 opened, 10 resolved')
  })

  it('stays within 50 blocks even for more changes than it asked for', () => {
    const message = slackMessage(Array.from({ length: 60 }, () => deliveryOf(alertOf())))
    expectValidBlockKit(message)
    expect(message.blocks).toHaveLength(50)
    expect(message.blocks.at(-1)).toMatchObject({ type: 'context', elements: [{ text: '…and 12 more changes; see the PlaceGuard alert list' }] })
  })

  it('escapes device-supplied text so it cannot mention the channel or plant a link', async () => {
    const hostile = alertOf({ deviceId: '<!channel>', site: '<https://evil.example|click here>', summary: 'a & b <@U123>', evidence: { fw: '<!here>' } })
    for (const deliveries of [[deliveryOf(hostile)], [deliveryOf(hostile), deliveryOf(hostile, 'resolved')]]) {
      const { raw, message } = await received(deliveries)
      for (const control of ['<!channel>', '<https://evil', '<@U123>', '<!here>']) expect(raw).not.toContain(control)
      const all = [message.text, ...textsOf(message).map((t) => t.text)].join('\n')
      expect(all).toContain('&lt;!channel&gt;')
      if (deliveries.length === 1) expect(all).toContain('&lt;https://evil.example|click here&gt;')
      expect(all).not.toMatch(/&(?!amp;|lt;|gt;)/)
      // No automatic links or mentions in any mrkdwn text either.
      for (const text of textsOf(message)) if (text.type === 'mrkdwn') expect(text.verbatim).toBe(true)
    }
  })

  it('is limited to one message a second and coalesces up to 20', () => {
    expect(createSlackSink({ type: 'slack', name: 'soc-chat', url: receiver.url, minSeverity: 'high' })).toMatchObject({ type: 'slack', name: 'soc-chat', ratePerSec: 1, maxBatch: 20 })
  })
})
