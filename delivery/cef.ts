/**
 * ArcSight Common Event Format (CEF) for one alert delivery: the line a SIEM
 * reads from the MSG of a syslog message (syslog-sink.ts). Pure.
 *
 * Layout and escaping follow "Implementing ArcSight CEF" (Micro Focus,
 * revision 25), sections "CEF Header", "Character Encoding" and
 * "CEF Key Names":
 *
 *   CEF:Version|Device Vendor|Device Product|Device Version|Device Event Class ID|Name|Severity|Extension
 *
 * Much of the text is device-supplied: the device id, a firmware string in
 * the summary, values in the evidence. A device must not be able to forge or
 * hide what the SOC reads (STRIDE: Tampering, Repudiation), so that text only
 * ever lands in a header field or an extension value, escaped; extension keys
 * are ours alone; and no control character survives to break the line.
 */
import { isIP } from 'node:net'
import type { Severity } from '../shared/alert-contract.ts'
import type { AuditRecord, Delivery } from './sink.ts'

/** CEF Severity is 0–10; the spec names 0–3 Low, 4–6 Medium, 7–8 High, 9–10 Very-High. */
export const CEF_SEVERITY: Record<Severity, number> = { info: 1, low: 3, medium: 5, high: 8, critical: 10 }

/**
 * Control characters (C0, DEL, C1) and the Unicode line and paragraph
 * separators: anything a reader may take as a line break. And format
 * characters (Cf: bidi overrides and isolates, zero-width characters),
 * which CEF cannot escape either and which make a SIEM show another
 * device id than the one sent (Trojan Source, CVE-2021-42574).
 */
const LINE_BREAKING = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu

/**
 * A header field. The spec: "If a pipe (|) is used in the header, it has to
 * be escaped with a backslash (\)", backslashes likewise; the header "cannot
 * contain newlines", so they (and every other control character) become spaces.
 */
function headerField (text: string, maxChars: number): string {
  return truncate(text, maxChars).replace(LINE_BREAKING, ' ').replace(/[\\|]/g, (c) => `\\${c}`)
}

/**
 * An extension value. The spec: an equal sign and a backslash in a value
 * are escaped with a backslash; "multi-line fields can be sent by CEF by
 * encoding the newline character as \n or \r". Other control and format
 * characters have no escape in CEF and become spaces. A pipe needs no escape here.
 */
function extensionValue (text: string, maxChars: number): string {
  return truncate(text, maxChars).replace(/[\\=\r\n]|[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu, (c) =>
    c === '\\' || c === '=' ? `\\${c}` : c === '\n' ? '\\n' : c === '\r' ? '\\r' : ' ')
}

/** Cuts to the spec's length for the field, by code point (never half a surrogate pair). */
function truncate (text: string, maxChars: number): string {
  return text.length <= maxChars ? text : [...text].slice(0, maxChars).join('')
}

/**
 * The CEF line for an alert delivery. Vendor and product are PlaceGuard, Device
 * Version is `version`, Device Event Class ID (the signature) the policy id,
 * Name the summary. The extension keys, with the spec's lengths:
 *
 * - `rt` when the alert was detected (ms since the epoch);
 * - `externalId` the alert id (40), `act` the change: opened, acknowledged or resolved (63);
 * - `cat` the policy's STRIDE category (1023);
 * - `suid` the device id (1023): the device is the principal the policy saw
 *   act, identified by its certificate. Not `dvchost` or `deviceExternalId`:
 *   in CEF the "device" is the product reporting the event, PlaceGuard;
 * - `msg` the summary (1023);
 * - `cn1` occurrences (findings folded into the alert);
 * - custom strings (4000), each named by its label: `cs1` evidence as JSON,
 *   `cs2` ATT&CK for ICS technique, `cs3` site, `cs4` device kind,
 *   `cs5` automated response, `cs6` resolution; absent when the alert has none.
 */
export function cefMessage (delivery: Delivery, version: string): string {
  const { alert } = delivery
  const response = alert.response && `${alert.response.action} ${alert.response.status}${alert.response.until ? ` until ${alert.response.until}` : ''}`
  const extension: Array<[string, string | number]> = [
    ['rt', Date.parse(alert.detectedAt)],
    ['externalId', extensionValue(alert.id, 40)],
    ['act', extensionValue(delivery.change, 63)],
    ['cat', extensionValue(alert.stride, 1023)],
    ['suid', extensionValue(alert.deviceId, 1023)],
    ['msg', extensionValue(alert.summary, 1023)],
    ['cn1Label', 'occurrences'], ['cn1', alert.occurrences],
    ['cs1Label', 'evidence'], ['cs1', extensionValue(JSON.stringify(alert.evidence), 4000)],
    ...custom(2, 'attack', alert.attack),
    ...custom(3, 'site', alert.site),
    ...custom(4, 'kind', alert.kind),
    ...custom(5, 'response', response),
    ...custom(6, 'resolution', alert.resolution),
  ]
  const header = ['CEF:0', 'PlaceGuard', 'PlaceGuard', headerField(version, 63), headerField(alert.policy, 1023),
    headerField(alert.summary, 512), String(CEF_SEVERITY[alert.severity])]
  return `${header.join('|')}|${extension.map(([key, value]) => `${key}=${value}`).join(' ')}`
}

/** A custom string and its label, or nothing when there is no value. */
function custom (index: number, label: string, value: string | null): Array<[string, string]> {
  return value === null ? [] : [[`cs${index}Label`, label], [`cs${index}`, extensionValue(value, 4000)]]
}

/** An operator's action is an account of what was done, not a finding: CEF Low, the alerts' `low`. */
export const CEF_AUDIT_SEVERITY = CEF_SEVERITY.low

/**
 * The CEF line for an entry of the operator audit trail. Device Event
 * Class ID `audit:<action>` (a signature of its own, apart from every
 * policy id), Name `<action> <outcome>`, Severity Low. Extension:
 *
 * - `rt` when the trail recorded it (ms since the epoch);
 * - `suser` who: `operator:3f2a1b0c`, `cli:alice`, `supplier:acme-1` (1023);
 * - `act` the action (63), `outcome` requested, done, refused or failed (63);
 * - `src` the remote address when it is one (an API request), else
 *   `shost` the machine of `cli@<host>` (1023);
 * - `msg` one line a person reads (1023);
 * - `cn1` the entry's seq in the chain;
 * - custom strings, each named by its label: `cs1` the entry's hash (a
 *   SIEM that keeps it can later show the trail was rewritten), `cs2` the
 *   subject (the device, alert or sink acted on; absent for the whole),
 *   `cs3` the detail as JSON, outcome and from left out (4000), `cs4` from,
 *   as the trail has it.
 */
export function cefAuditMessage (entry: AuditRecord, version: string): string {
  const { outcome, ...rest } = entry.detail
  const outcomeText = typeof outcome === 'string' ? outcome : 'recorded'
  const where: Array<[string, string]> = entry.from === null
    ? []
    : isIP(entry.from) ? [['src', entry.from]] : /@(.+)$/.test(entry.from) ? [['shost', extensionValue(/@(.+)$/.exec(entry.from)![1]!, 1023)]] : []
  const summary = `${entry.actor} ${entry.action}${entry.subject === null ? '' : ` ${entry.subject}`}: ${outcomeText}`
  const extension: Array<[string, string | number]> = [
    ['rt', Date.parse(entry.at)],
    ['suser', extensionValue(entry.actor, 1023)],
    ['act', extensionValue(entry.action, 63)],
    ['outcome', extensionValue(outcomeText, 63)],
    ...where,
    ['msg', extensionValue(summary, 1023)],
    ['cn1Label', 'seq'], ['cn1', entry.seq],
    ['cs1Label', 'hash'], ['cs1', extensionValue(entry.hash, 4000)],
    ...custom(2, 'subject', entry.subject),
    ['cs3Label', 'detail'], ['cs3', extensionValue(JSON.stringify(rest), 4000)],
    ...custom(4, 'from', entry.from),
  ]
  const header = ['CEF:0', 'PlaceGuard', 'PlaceGuard', headerField(version, 63), headerField(`audit:${entry.action}`, 1023),
    headerField(`${entry.action} ${outcomeText}`, 512), String(CEF_AUDIT_SEVERITY)]
  return `${header.join('|')}|${extension.map(([key, value]) => `${key}=${value}`).join(' ')}`
}
