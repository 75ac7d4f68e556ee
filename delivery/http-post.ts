/**
 * The HTTP edge shared by the webhook, Slack, Teams and PagerDuty sinks:
 * one POST, its answer classified into a DeliveryResult. Nothing here
 * throws for a failed delivery, and no error names the URL: a Slack or
 * Teams webhook URL is itself the credential.
 */
import pkg from '../package.json' with { type: 'json' }
import type { Alert } from '../shared/alert-contract.ts'
import { type Delivery, type DeliveryResult, resultOfHttpStatus } from './sink.ts'

/** Options every HTTP sink takes besides its configuration. */
export interface HttpSinkOptions {
  /** Longest one request may take, answer included, before it counts as retryable; default 10 s. */
  timeoutMs?: number
}

export const DEFAULT_TIMEOUT_MS = 10_000
/** The part of an error answer kept for the error text (resultOfHttpStatus keeps 200 characters of it). */
const MAX_ANSWER_BYTES = 4_096

/**
 * `refusal`, for a channel that can refuse inside a 2xx answer (Slack's
 * `{"ok":false,…}`): reads the answer (bounded) and names the refusal, or
 * undefined when the answer accepts.
 */
export async function postJson (url: string, body: string, headers: Record<string, string>, timeoutMs = DEFAULT_TIMEOUT_MS,
  refusal?: (answer: string) => string | undefined): Promise<DeliveryResult> {
  let response: Response
  let answer: string
  try {
    response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'user-agent': `PlaceGuard/${pkg.version}`, ...headers },
      body,
      // A redirect is never followed: it would resend a signed alert (or a
      // routing key) to a host nobody configured. 'manual' rather than
      // 'error' so the status reaches the classification below.
      redirect: 'manual',
      signal: AbortSignal.timeout(timeoutMs),
    })
    // An accepted delivery is done whatever its answer says; only a refusal's answer explains something.
    answer = response.ok && !refusal ? await discard(response) : await readBounded(response)
  } catch (error) {
    return { outcome: 'retryable', error: describeNetworkError(error) }
  }
  const refused = response.ok && refusal ? refusal(answer) : undefined
  if (refused !== undefined) return { outcome: 'failure', error: `HTTP ${response.status} but refused: ${withoutSecret(refused, url).slice(0, 200)}` }
  if (response.status >= 300 && response.status < 400) {
    // The URL is wrong (moved, or behind a login page): retrying cannot
    // help, so the outbox dead-letters it at once and the operator sees why.
    return { outcome: 'failure', error: `HTTP ${response.status}: redirect not followed; configure the final URL` }
  }
  return resultOfHttpStatus(response.status, response.headers.get('retry-after'), withoutSecret(answer, url))
}

/**
 * For channels that take one event per request (maxBatch 1): sends each in
 * turn and stops at the first that is not accepted. Should the outbox ever
 * pass more than one, the ones already sent are sent again on the retry,
 * which the receiver folds by webhook-id or dedup_key.
 */
export async function sendEach (deliveries: Delivery[], sendOne: (delivery: Delivery) => Promise<DeliveryResult>): Promise<DeliveryResult> {
  for (const delivery of deliveries) {
    const result = await sendOne(delivery)
    if (result.outcome !== 'success') return result
  }
  return { outcome: 'success' }
}

/** Shortens text to `max` characters with "…", never splitting a surrogate pair. */
export function truncate (text: string, max: number): string {
  const chars = Array.from(text)
  return chars.length <= max ? text : `${chars.slice(0, max - 1).join('')}…`
}

/** An alert's evidence on one line, `key=value · …`, for the chat sinks; `whenEmpty` if there is none. */
export function evidenceLine (alert: Alert, whenEmpty: string): string {
  const entries = Object.entries(alert.evidence)
  return entries.length === 0 ? whenEmpty : entries.map(([key, value]) => `${key}=${String(value)}`).join(' · ')
}

async function discard (response: Response): Promise<string> {
  await response.body?.cancel().catch(() => {})
  return ''
}

/** Reads at most MAX_ANSWER_BYTES of the answer, then lets the rest go. */
async function readBounded (response: Response): Promise<string> {
  if (!response.body) return ''
  const reader = response.body.getReader()
  const chunks: Uint8Array[] = []
  let size = 0
  while (size < MAX_ANSWER_BYTES) {
    const { done, value } = await reader.read()
    if (done) break
    chunks.push(value)
    size += value.byteLength
  }
  await reader.cancel().catch(() => {})
  return new TextDecoder().decode(Buffer.concat(chunks).subarray(0, MAX_ANSWER_BYTES)).trim()
}

/** fetch() wraps the socket error in `cause`; its message can carry host and port, so only the code is kept. */
function describeNetworkError (error: unknown): string {
  if (error instanceof DOMException && error.name === 'TimeoutError') return 'timeout: no answer in time'
  const cause = (error as { cause?: { code?: string } }).cause
  const code = cause?.code ?? ''
  const known: Record<string, string> = {
    ECONNREFUSED: 'connection refused',
    ECONNRESET: 'connection reset',
    ENOTFOUND: 'host not found',
    EAI_AGAIN: 'name resolution failed',
    ETIMEDOUT: 'connect timeout',
    UND_ERR_CONNECT_TIMEOUT: 'connect timeout',
    UND_ERR_SOCKET: 'connection closed',
    UND_ERR_HEADERS_TIMEOUT: 'timeout: no answer in time',
    UND_ERR_BODY_TIMEOUT: 'timeout: no answer in time',
  }
  if (known[code]) return `${known[code]} (${code})`
  if (/CERT|SSL|TLS/i.test(code)) return `TLS error (${code})`
  return code ? `network error (${code})` : 'network error'
}

/** An answer may echo the request line; the URL (or its path, for Slack the token) never goes into an error. */
function withoutSecret (text: string, url: string): string {
  const { pathname } = new URL(url)
  let clean = text.replaceAll(url, '[url]')
  if (pathname.length > 1) clean = clean.replaceAll(pathname, '[url]')
  return clean
}
