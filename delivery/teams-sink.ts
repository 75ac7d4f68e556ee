/**
 * Microsoft Teams through a Workflows webhook (Power Automate "When a
 * Teams webhook request is received"): an Adaptive Card per alert change,
 * or one card coalescing a backlog, one Container per alert.
 *
 * Untrusted text. TextBlock and FactSet titles and values render a
 * Markdown subset in Teams (links among it), and Teams clients on desktop,
 * web and mobile parse it differently, so no escaping is reliable
 * everywhere. Device-supplied strings (device id, site, kind, summary,
 * evidence) therefore go only into RichTextBlock TextRuns, which the
 * Adaptive Cards schema renders as plain text ("Markdown is not
 * supported"); TextBlocks and the FactSet carry only PlaceGuard's own
 * values (policy, severity, status, times, ids). A device id like
 * `[click](https://evil)` shows as those characters, not as a link (STRIDE S/T).
 */
import type { SinkConfigOf } from './config.ts'
import type { Alert, Severity } from '../shared/alert-contract.ts'
import { DEFAULT_TIMEOUT_MS, evidenceLine, type HttpSinkOptions, postJson, truncate } from './http-post.ts'
import { shownAlert } from './shown-alert.ts'
import type { DeliveredChange, Delivery, Sink } from './sink.ts'

/** Teams refuses messages over about 28 KB; the card is fitted under this, leaving room for the flow's own wrapping. */
const MAX_CARD_BYTES = 24_000
/** Characters of one device-supplied string before "…"; halved until the card fits. */
const FIRST_TEXT_CAP = 600

const SEVERITY_COLOUR: Record<Severity, string> = { critical: 'attention', high: 'attention', medium: 'warning', low: 'accent', info: 'default' }
const CHANGE_LABEL: Record<DeliveredChange, string> = { opened: 'New', acknowledged: 'Acknowledged', resolved: 'Resolved' }

type Element = Record<string, unknown>

export function createTeamsSink (config: SinkConfigOf<'teams'>, options: HttpSinkOptions = {}): Sink {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS
  return {
    type: 'teams',
    name: config.name ?? config.type,
    // A card of 10 alerts is about 12 KB, half Teams' message limit, so
    // ordinary summaries are never shortened to fit.
    maxBatch: 10,
    // The flow posts as a bot into one channel, and Teams limits a bot to
    // 1,800 messages an hour per conversation (0.5/s sustained); at 10
    // changes a card that still carries 5 alert changes a second.
    ratePerSec: 0.5,
    send: async (deliveries) => deliveries.length === 0
      ? { outcome: 'success' }
      : postJson(config.url, teamsBody(deliveries), {}, timeoutMs),
    close: async () => {},
  }
}

/** The Workflows request body: a message with one Adaptive Card attachment, at most MAX_CARD_BYTES. */
export function teamsBody (received: Delivery[]): string {
  const deliveries = received.map((delivery) => ({ ...delivery, alert: shownAlert(delivery.alert) }))
  let cap = FIRST_TEXT_CAP
  let body = JSON.stringify(envelope(deliveries, cap))
  while (Buffer.byteLength(body) > MAX_CARD_BYTES && cap > 8) {
    cap = Math.floor(cap / 2)
    body = JSON.stringify(envelope(deliveries, cap))
  }
  return body
}

function envelope (deliveries: Delivery[], cap: number) {
  const body = deliveries.length === 1
    ? alertElements(deliveries[0]!, cap, true)
    : [
        { type: 'TextBlock', text: `${deliveries.length} PlaceGuard alert changes`, size: 'Large', weight: 'Bolder', wrap: true },
        ...deliveries.map((delivery) => ({ type: 'Container', separator: true, spacing: 'Medium', items: alertElements(delivery, cap, false) })),
      ]
  return {
    type: 'message',
    attachments: [{
      contentType: 'application/vnd.microsoft.card.adaptive',
      contentUrl: null,
      content: {
        $schema: 'http://adaptivecards.io/schemas/adaptive-card.json',
        type: 'AdaptiveCard',
        version: '1.4',
        body,
        msteams: { width: 'Full' },
      },
    }],
  }
}

/** One alert change: a title, device and summary, the facts, the evidence; the threat too when it is the card's only alert. */
function alertElements ({ change, alert }: Delivery, cap: number, alone: boolean): Element[] {
  const elements: Element[] = [
    {
      type: 'TextBlock',
      text: `${CHANGE_LABEL[change]} ${alert.severity} alert: ${alert.policy}`,
      size: alone ? 'Large' : 'Medium',
      weight: 'Bolder',
      color: change === 'resolved' ? 'good' : SEVERITY_COLOUR[alert.severity],
      wrap: true,
    },
    richText([{ text: truncate(alert.deviceId, cap), weight: 'Bolder' }, { text: ` — ${truncate(alert.summary, cap)}` }]),
    {
      type: 'FactSet',
      facts: [
        { title: 'Policy', value: alert.policy },
        { title: 'Severity', value: alert.severity },
        { title: 'Status', value: alert.status },
        { title: 'Detected', value: alert.detectedAt },
        { title: 'Alert', value: alert.id },
      ],
    },
    richText([
      { text: 'Site ', weight: 'Bolder' }, { text: truncate(alert.site ?? '—', cap) },
      { text: '   Kind ', weight: 'Bolder' }, { text: truncate(alert.kind ?? '—', cap) },
      ...lifecycleRuns(change, alert, cap),
    ]),
  ]
  if (alone) elements.push(richText([{ text: `${alert.stride}${alert.attack ? ` · ATT&CK ${alert.attack}` : ''}`, isSubtle: true }]))
  elements.push(richText([{ text: truncate(evidenceLine(alert, 'no evidence recorded'), cap), fontType: 'Monospace', isSubtle: true }]))
  return elements
}

function lifecycleRuns (change: DeliveredChange, alert: Alert, cap: number): Element[] {
  if (change === 'acknowledged' && alert.acknowledgedBy) return [{ text: '   Acknowledged by ', weight: 'Bolder' }, { text: truncate(alert.acknowledgedBy, cap) }]
  if (change === 'resolved' && alert.resolution) return [{ text: '   Resolution ', weight: 'Bolder' }, { text: truncate(alert.resolution, cap) }]
  return []
}

/** TextRuns: plain text by the Adaptive Cards schema, whatever characters they hold. */
function richText (runs: Element[]): Element {
  return { type: 'RichTextBlock', inlines: runs.map((run) => ({ type: 'TextRun', ...run })) }
}
