import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Delivery } from '../../delivery/index.ts'
import { createTeamsSink } from '../../delivery/teams-sink.ts'
import { alertOf, deliveryOf } from '../helpers/alerts.ts'
import { type HttpReceiver, soleRequestBody, startHttpReceiver } from '../helpers/http-receiver.ts'

interface Element { type: string, text?: string, items?: Element[], facts?: Array<{ title: string, value: string }>, inlines?: Element[] }
interface Envelope {
  type: string
  attachments: Array<{ contentType: string, contentUrl: null, content: { $schema: string, type: string, version: string, body: Element[] } }>
}

let receiver: HttpReceiver
beforeAll(async () => {
  // Teams Workflows accepts with 202 and runs the flow afterwards.
  receiver = await startHttpReceiver((_req, _i, res) => { res.writeHead(202).end() })
})
afterAll(() => receiver.stop())

async function received (deliveries: Delivery[]): Promise<{ raw: string, card: Envelope }> {
  const raw = await soleRequestBody(receiver, createTeamsSink({ type: 'teams', url: receiver.url, minSeverity: 'info' }), deliveries)
  return { raw, card: JSON.parse(raw) as Envelope }
}

/** Every element of the card, nested ones included. */
function elements (list: Element[]): Element[] {
  return list.flatMap((element) => [element, ...elements(element.items ?? []), ...elements(element.inlines ?? [])])
}

/** Text Teams renders as Markdown: TextBlocks, fact titles and values. */
function markdownTexts (list: Element[]): string[] {
  return elements(list).flatMap((e) => e.type === 'TextBlock' ? [e.text!] : e.type === 'FactSet' ? e.facts!.flatMap((f) => [f.title, f.value]) : [])
}

const plainTexts = (list: Element[]) => elements(list).filter((e) => e.type === 'TextRun').map((e) => e.text!)

describe('the Teams sink', () => {
  it('posts a Workflows message with one Adaptive Card, and 202 counts as delivered', async () => {
    const alert = alertOf()
    const { card } = await received([deliveryOf(alert)])
    expect(card).toEqual({
      type: 'message',
      attachments: [{
        contentType: 'application/vnd.microsoft.card.adaptive',
        contentUrl: null,
        content: expect.objectContaining({ $schema: 'http://adaptivecards.io/schemas/adaptive-card.json', type: 'AdaptiveCard', version: '1.4', body: expect.any(Array) }),
      }],
    })
    const body = card.attachments[0]!.content.body
    expect(body[0]).toMatchObject({ type: 'TextBlock', text: 'New critical alert: identity-clone', wrap: true })
    const facts = Object.fromEntries(elements(body).find((e) => e.type === 'FactSet')!.facts!.map((f) => [f.title, f.value]))
    expect(facts).toEqual({ Policy: 'identity-clone', Severity: 'critical', Status: 'open', Detected: alert.detectedAt, Alert: alert.id })
    const shown = plainTexts(body).join('')
    for (const text of ['flood-007', alert.summary, 'riverside', 'flood', 'firstAddress=10.0.0.5', 'T0849 Masquerading']) expect(shown).toContain(text)
  })

  it('coalesces several changes into one card, a Container per alert', async () => {
    const deliveries = Array.from({ length: 5 }, (_, i) => deliveryOf(alertOf({ deviceId: `housing-${i}`, acknowledgedBy: 'alice' }), i === 4 ? 'acknowledged' : 'opened'))
    const { card } = await received(deliveries)
    const body = card.attachments[0]!.content.body
    expect(body[0]).toMatchObject({ type: 'TextBlock', text: '5 PlaceGuard alert changes' })
    const containers = body.filter((e) => e.type === 'Container')
    expect(containers).toHaveLength(5)
    containers.forEach((container, i) => expect(plainTexts(container.items!)).toContain(`housing-${i}`))
    expect(markdownTexts(containers[4]!.items!)).toContain('Acknowledged critical alert: identity-clone')
    expect(plainTexts(containers[4]!.items!)).toContain('alice')
  })

  it('keeps device-supplied text out of everything Teams renders as Markdown', async () => {
    const hostile = alertOf({ deviceId: '[click](https://evil.example)', site: '**urgent**', kind: '_x_', summary: 'see [docs](https://evil.example/login)' })
    const { card } = await received([deliveryOf(hostile), deliveryOf(hostile, 'resolved')])
    const body = card.attachments[0]!.content.body
    for (const text of markdownTexts(body)) expect(text).not.toMatch(/evil|urgent|_x_/)
    // Shown as typed, in TextRuns (plain text by the schema).
    expect(plainTexts(body)).toContain('[click](https://evil.example)')
    expect(plainTexts(body)).toContain('**urgent**')
  })

  it('fits even 20 changes with huge fields under Teams\' 28 KB message limit, every alert still in it', async () => {
    const deliveries = Array.from({ length: 20 }, (_, i) => deliveryOf(alertOf({
      deviceId: `energy-${i}-${'é'.repeat(200)}`, summary: '"😀'.repeat(3_000), site: '\\'.repeat(2_000), evidence: { note: '\u0001'.repeat(1_000) },
    })))
    const { raw, card } = await received(deliveries)
    expect(Buffer.byteLength(raw)).toBeLessThanOrEqual(28_000)
    const body = card.attachments[0]!.content.body
    expect(body.filter((e) => e.type === 'Container')).toHaveLength(20)
    const facts = markdownTexts(body).join('\n')
    for (const { alert } of deliveries) expect(facts).toContain(alert.id)
  })

  it('sends at most one card every two seconds, up to 10 changes each', () => {
    expect(createTeamsSink({ type: 'teams', url: receiver.url, minSeverity: 'info' })).toMatchObject({ type: 'teams', name: 'teams', ratePerSec: 0.5, maxBatch: 10 })
  })
})
