/**
 * Slack incoming webhook: a Block Kit message per alert change, or one
 * message coalescing a backlog (Slack accepts about one message per
 * second per webhook, so a burst is batched rather than dropped).
 *
 * Device-supplied text (device id, site, kind, summary, evidence) has its
 * format characters written out (shown-alert.ts), is escaped per Slack's
 * "Escaping text" (& < >), loses mrkdwn's formatting characters, and is set
 * in `verbatim` mrkdwn, so a device id such as `<!channel>` or `<https://evil|click>`
 * can neither ping the channel nor plant a link (STRIDE S/T).
 */
import type { SinkConfigOf } from './config.ts'
import type { Alert, Severity } from '../shared/alert-contract.ts'
import { DEFAULT_TIMEOUT_MS, evidenceLine, type HttpSinkOptions, postJson, truncate } from './http-post.ts'
import { shownAlert } from './shown-alert.ts'
import type { DeliveredChange, Delivery, Sink } from './sink.ts'

/** Block Kit limits (api.slack.com/reference/block-kit). */
const MAX_BLOCKS = 50
const MAX_TEXT = 3_000
const MAX_HEADER = 150
const MAX_FIELD = 2_000
/** What one alert may take in a coalesced message, so 20 of them stay readable. */
const BATCH_SUMMARY = 300
const BATCH_EVIDENCE = 300
const EVIDENCE = 1_000

const SEVERITY_EMOJI: Record<Severity, string> = { critical: '🔴', high: '🟠', medium: '🟡', low: '🔵', info: '⚪' }
const CHANGE: Record<DeliveredChange, { icon: string, label: string }> = {
  opened: { icon: '🚨', label: 'New' },
  acknowledged: { icon: '👀', label: 'Acknowledged' },
  resolved: { icon: '✅', label: 'Resolved' },
}

type Text = { type: 'mrkdwn', text: string, verbatim: true } | { type: 'plain_text', text: string, emoji: true }
type Block =
  | { type: 'header', text: Text }
  | { type: 'section', text: Text, fields?: Text[] }
  | { type: 'context', elements: Text[] }
export interface SlackMessage { text: string, blocks: Block[], unfurl_links: false, unfurl_media: false }

export function createSlackSink (config: SinkConfigOf<'slack'>, options: HttpSinkOptions = {}): Sink {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS
  return {
    type: 'slack',
    name: config.name ?? config.type,
    maxBatch: 20,
    // Slack: incoming webhooks take about one message per second, beyond which they answer 429.
    ratePerSec: 1,
    send: async (deliveries) => deliveries.length === 0
      ? { outcome: 'success' }
      : postJson(config.url, JSON.stringify(slackMessage(deliveries)), {}, timeoutMs, slackRefusal),
    close: async () => {},
  }
}

/**
 * Incoming webhooks answer `ok` and refuse with a 4xx, but Slack's Web API
 * style, and the proxies and Slack-compatible servers in front of some
 * SOCs, answer 200 with `{"ok":false,"error":"…"}`: a refusal, not a
 * delivery (it would otherwise be counted as delivered and lost).
 */
function slackRefusal (answer: string): string | undefined {
  if (!answer.startsWith('{')) return undefined
  try {
    const parsed = JSON.parse(answer) as { ok?: unknown, error?: unknown }
    return parsed.ok === false ? `ok:false (${typeof parsed.error === 'string' ? parsed.error : 'no error given'})` : undefined
  } catch {
    return undefined // not JSON (cut at the bound, or not Slack's): the 2xx stands
  }
}

export function slackMessage (received: Delivery[]): SlackMessage {
  const deliveries = received.map((delivery) => ({ ...delivery, alert: shownAlert(delivery.alert) }))
  const [first] = deliveries
  const blocks = deliveries.length > 1 ? coalesced(deliveries) : first!.change === 'opened' ? opened(first!.alert) : lifecycle(first!)
  return { text: fallbackText(deliveries), blocks, unfurl_links: false, unfurl_media: false }
}

/** A new alert in full: what, where, the evidence. */
function opened (alert: Alert): Block[] {
  return [
    { type: 'header', text: plain(`${SEVERITY_EMOJI[alert.severity]} ${capitalised(alert.severity)}: ${alert.policy}`, MAX_HEADER) },
    {
      type: 'section',
      text: mrkdwn(`*${escape(alert.deviceId)}* — ${escape(alert.summary)}`),
      fields: [
        mrkdwn(`*Site*\n${escape(alert.site ?? '—')}`, MAX_FIELD),
        mrkdwn(`*Kind*\n${escape(alert.kind ?? '—')}`, MAX_FIELD),
        mrkdwn(`*Status*\n${alert.status}`, MAX_FIELD),
        mrkdwn(`*Detected*\n${slackDate(alert.detectedAt)}`, MAX_FIELD),
      ],
    },
    {
      type: 'context',
      elements: [
        mrkdwn(`Evidence: ${escape(evidenceLine(alert, '—'))}`, EVIDENCE),
        mrkdwn(escape(`${alert.stride}${alert.attack ? ` · ATT&CK ${alert.attack}` : ''} · alert ${alert.id}`)),
      ],
    },
  ]
}

/** An acknowledgement or resolution: a short message of its own, who did it first. */
function lifecycle (delivery: Delivery): Block[] {
  const [headline, summary, facts, evidence] = compactLines(delivery)
  return [
    { type: 'section', text: mrkdwn(`${headline}\n${summary}`) },
    { type: 'context', elements: [mrkdwn(facts!), mrkdwn(evidence!, EVIDENCE)] },
  ]
}

/** Several changes in one message: a header, then one compact section per alert. */
function coalesced (deliveries: Delivery[]): Block[] {
  const fits = deliveries.length <= MAX_BLOCKS - 1 ? deliveries.length : MAX_BLOCKS - 2
  const blocks: Block[] = [{ type: 'header', text: plain(`${deliveries.length} PlaceGuard alert changes`, MAX_HEADER) }]
  for (const delivery of deliveries.slice(0, fits)) blocks.push({ type: 'section', text: mrkdwn(compactLines(delivery).join('\n')) })
  // Only when the outbox passes more than maxBatch: the alerts are in PlaceGuard either way.
  if (fits < deliveries.length) {
    blocks.push({ type: 'context', elements: [mrkdwn(`…and ${deliveries.length - fits} more changes; see the PlaceGuard alert list`)] })
  }
  return blocks
}

/** An alert change in four short lines: what and who, the summary, where and when, the evidence. */
function compactLines ({ change, alert }: Delivery): string[] {
  const who = change === 'acknowledged' ? alert.acknowledgedBy : change === 'resolved' ? alert.resolution : null
  return [
    `${CHANGE[change].icon} *${CHANGE[change].label}* · ${SEVERITY_EMOJI[alert.severity]} ${alert.severity} · *${alert.policy}* on *${escape(alert.deviceId)}*${who ? ` — ${escape(truncate(who, BATCH_SUMMARY))}` : ''}`,
    escape(truncate(alert.summary, BATCH_SUMMARY)),
    `${escape(alert.site ?? '—')} · ${escape(alert.kind ?? '—')} · ${alert.status} · ${slackDate(alert.detectedAt)} · alert ${escape(alert.id)}`,
    `Evidence: ${escape(truncate(evidenceLine(alert, '—'), BATCH_EVIDENCE))}`,
  ]
}

/** The notification text (and what clients without blocks show). */
function fallbackText (deliveries: Delivery[]): string {
  if (deliveries.length === 1) {
    const { change, alert } = deliveries[0]!
    return clip(escape(`${CHANGE[change].label} ${alert.severity} alert ${alert.policy} on ${alert.deviceId}: ${alert.summary}`), MAX_TEXT)
  }
  const counts = Object.entries(Object.groupBy(deliveries, (d) => d.change)).map(([change, list]) => `${list!.length} ${change}`)
  return `${deliveries.length} PlaceGuard alert changes: ${counts.join(', ')}`
}

/**
 * Slack "Escaping text": `&`, `<` and `>` as entities, which also defuses
 * `<!channel>`, `<@U…>` and `<url|label>`. mrkdwn has no escape for its
 * formatting characters, so `*`, `_`, `~` and the backtick become
 * look-alikes that Slack does not parse: a device id cannot bold, strike
 * or code-format its way into reading as PlaceGuard's own text (STRIDE S/T).
 */
function escape (text: string): string {
  return text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replace(/[*_~`]/g, (c) => MRKDWN_LOOKALIKE[c]!)
}

const MRKDWN_LOOKALIKE: Record<string, string> = { '*': '\u2217', '_': '\u02cd', '~': '\u223c', '`': '\u02cb' }

/** `verbatim`: no automatic links, channel names or mentions from the text (Block Kit text object). */
function mrkdwn (text: string, max = MAX_TEXT): Text {
  return { type: 'mrkdwn', text: clip(text, max), verbatim: true }
}

function plain (text: string, max: number): Text {
  return { type: 'plain_text', text: truncate(text, max), emoji: true }
}

/** Truncates escaped text without leaving half an entity (`&am…`) behind. */
function clip (text: string, max: number): string {
  const cut = truncate(text, max)
  return cut === text ? text : cut.replace(/&[a-z]*…$/, '…')
}

/** Slack shows `<!date^…>` in the reader's time zone, falling back to the ISO time. */
function slackDate (iso: string): string {
  const seconds = Math.floor(Date.parse(iso) / 1000)
  return Number.isFinite(seconds) ? `<!date^${seconds}^{date_short_pretty} {time_secs}|${escape(iso)}>` : escape(iso)
}

function capitalised (text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1)
}
