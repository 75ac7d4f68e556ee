/**
 * The alert as a sink shows it to a person. Device-derived text (device id,
 * site, kind, summary, evidence, resolution) may carry Unicode format
 * characters: a right-to-left override (U+202E) makes `flood-1‮exe.gnp`
 * read as another id, zero-width characters make two ids look alike
 * (Trojan Source, CVE-2021-42574; STRIDE S/R). Every sink formats from
 * this copy, in which those characters are written out as `\u202e`, so the
 * analyst sees that they were there. Channel markup (Slack mrkdwn, CEF) is
 * escaped by each sink on top of this.
 */
import type { Alert } from '../shared/alert-contract.ts'
import { visibleText } from '../shared/untrusted-text.ts'

const shown = (text: string): string => visibleText(text, Number.POSITIVE_INFINITY)

export function shownAlert (alert: Alert): Alert {
  const evidence = Object.fromEntries(Object.entries(alert.evidence).map(([key, value]) => [shown(key), typeof value === 'string' ? shown(value) : value]))
  return {
    ...alert,
    deviceId: shown(alert.deviceId), site: alert.site && shown(alert.site), kind: alert.kind && shown(alert.kind), summary: shown(alert.summary),
    evidence, resolution: alert.resolution && shown(alert.resolution), acknowledgedBy: alert.acknowledgedBy && shown(alert.acknowledgedBy),
  }
}

/**
 * JSON for machines (the signed webhook): the same data, but format
 * characters sent as JSON `\uXXXX` escapes, so a receiver that logs or
 * shows the raw body never carries a live override.
 */
export function jsonWithEscapedFormatCharacters (value: unknown): string {
  return JSON.stringify(value).replace(/[\p{Cf}\u2028\u2029]/gu, (char) => `\\u${char.codePointAt(0)!.toString(16).padStart(4, '0')}`)
}
