/**
 * Issue 11: device-derived text in every sink. A right-to-left override or
 * a zero-width character must not reach an analyst live, and Slack markup
 * from a device must not format, mention or link.
 */
import { describe, expect, it } from 'vitest'
import { cefMessage } from '../../delivery/cef.ts'
import { pagerDutyEvent } from '../../delivery/pagerduty-sink.ts'
import { slackMessage } from '../../delivery/slack-sink.ts'
import { teamsBody } from '../../delivery/teams-sink.ts'
import { createWebhookSink } from '../../delivery/webhook-sink.ts'
import { alertOf, deliveryOf } from '../helpers/alerts.ts'
import { soleRequestBody, startHttpReceiver } from '../helpers/http-receiver.ts'

const FORMAT_CHARACTERS = /[\u202A-\u202E\u2066-\u2069\u200B-\u200F\u2060\uFEFF]/u
const hostile = alertOf({
  deviceId: 'flood-1\u202Egnp.exe',
  summary: 'firmware *URGENT* _call_ ~now~ `x` <!channel> <https://evil.example|click> & \u200Bflood-2',
  site: 'river\u2066side\u2069',
  evidence: { fw: '9.9.9\u200D', note: '<!here> *bold*', count: 3 },
})

describe('device-derived text in the sinks', () => {
  it('Slack: no live format character, no mention, no link, no mrkdwn from the device', () => {
    for (const deliveries of [[deliveryOf(hostile)], [deliveryOf(hostile, 'resolved')], [deliveryOf(hostile), deliveryOf(hostile, 'acknowledged')]]) {
      const json = JSON.stringify(slackMessage(deliveries))
      expect(JSON.stringify(slackMessage(deliveries), null, 0)).not.toMatch(FORMAT_CHARACTERS) // JSON.stringify keeps them raw
      expect(json).not.toMatch(/<!channel>|<!here>|<https:\/\/evil/)
      expect(json).not.toMatch(/\*URGENT\*|_call_|~now~|`x`|\*bold\*/)
      expect(json).toContain('\\\\u202e') // the override is shown as text, so the analyst sees it was there
      expect(json).toContain('&amp;')
    }
  })

  it('Teams: device text in TextRuns, with no live format character', () => {
    const body = teamsBody([deliveryOf(hostile)])
    expect(JSON.parse(body) as unknown).toBeDefined()
    expect(JSON.stringify(JSON.parse(body))).not.toMatch(FORMAT_CHARACTERS)
    expect(body).toContain('flood-1\\\\u202egnp.exe')
  })

  it('PagerDuty: no live format character in summary, source or details', () => {
    expect(JSON.stringify(pagerDutyEvent('key', deliveryOf(hostile)))).not.toMatch(FORMAT_CHARACTERS)
  })

  it('CEF: format characters become spaces like control characters', () => {
    const line = cefMessage(deliveryOf(hostile), '1.0.0')
    expect(line).not.toMatch(FORMAT_CHARACTERS)
    expect(line).toContain('suid=flood-1 gnp.exe')
  })

  it('webhook: the same data, with format characters sent as JSON escapes', async () => {
    const receiver = await startHttpReceiver()
    try {
      const sink = createWebhookSink({ type: 'webhook', url: receiver.url, secrets: [`whsec_${Buffer.alloc(32, 7).toString('base64')}`], minSeverity: 'info' })
      const delivery = deliveryOf(hostile)
      const body = await soleRequestBody(receiver, sink, [delivery])
      expect(body).not.toMatch(FORMAT_CHARACTERS)
      expect(JSON.parse(body)).toEqual(delivery.alert)
    } finally {
      await receiver.stop()
    }
  })
})
