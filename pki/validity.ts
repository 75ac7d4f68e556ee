/**
 * When the fleet CA's certificates and CRLs are valid: the window a device
 * certificate may be given (`days`, or `notBefore`/`notAfter`, never past
 * the CA's own notAfter), the windows of the CA's own certificates and
 * CRLs, when a CRL is due to be re-signed, and what a recorded
 * certificate's status is at a given time. Pure: the time is passed in.
 */
import { invalidInput } from '../shared/errors.ts'
import { printable } from '../shared/ids.ts'
import type { InventoryRecord, InventoryStatus } from './inventory.ts'

export const DAY_MS = 86_400_000
const BACKDATE_MS = 5 * 60_000

export const DEFAULT_DEVICE_DAYS = 365
export const MAX_DEVICE_DAYS = 3650
export const DEFAULT_CA_DAYS = 3650
/** The broker's server certificate and the collector's client certificate. */
export const DEFAULT_SERVICE_DAYS = 825
/** Lifetime of each CRL; the broker refuses every client once it lapses, so it is refreshed before. */
export const DEFAULT_CRL_DAYS = 30
/**
 * A session opened just before a certificate expired stays open past
 * notAfter (the broker checks expiry at the handshake only), so its serial
 * must stay in the CRL a while for the broker's live-session sweep.
 */
export const DEFAULT_CRL_KEEP_EXPIRED_DAYS = 90

/** What a caller may ask of a device certificate's validity: `days` from now, or an explicit window. */
export interface ValidityInput {
  days?: number
  notBefore?: string | Date
  notAfter?: string | Date
}

export interface ValidityWindow { notBefore: Date, notAfter: Date }

/** Where something signed now starts: five minutes back, so a peer whose clock runs a little slow does not find it not yet valid. */
export function backdated (now: Date): Date {
  return new Date(now.getTime() - BACKDATE_MS)
}

/** A window that opens now (backdated) and lasts `days`. */
export function windowFor (now: Date, days: number): ValidityWindow {
  return { notBefore: backdated(now), notAfter: new Date(now.getTime() + days * DAY_MS) }
}

/**
 * The window a device certificate gets: `days` (whole, 1–3650, default 365)
 * from now, or `notAfter` with an optional `notBefore` (default now) — not
 * both forms. notAfter must be after notBefore and not after the CA's own
 * notAfter; a window wholly in the past or the future is allowed.
 */
export function deviceValidity (input: ValidityInput, now: Date, caNotAfter: Date): ValidityWindow {
  if (input.days !== undefined && (input.notBefore !== undefined || input.notAfter !== undefined)) {
    throw invalidInput('days', 'give either `days` or `notBefore`/`notAfter`, not both')
  }
  let notBefore: Date
  let notAfter: Date
  if (input.notBefore !== undefined || input.notAfter !== undefined) {
    notBefore = input.notBefore === undefined ? backdated(now) : parseDate('notBefore', input.notBefore)
    if (input.notAfter === undefined) throw invalidInput('notAfter', 'is required with `notBefore`')
    notAfter = parseDate('notAfter', input.notAfter)
  } else {
    const days = input.days ?? DEFAULT_DEVICE_DAYS
    if (!Number.isInteger(days) || days < 1 || days > MAX_DEVICE_DAYS) {
      throw invalidInput('days', `${days} is not a whole number of days from 1 to ${MAX_DEVICE_DAYS}`)
    }
    ({ notBefore, notAfter } = windowFor(now, days))
  }
  if (notAfter.getTime() <= notBefore.getTime()) {
    throw invalidInput('notAfter', `${notAfter.toISOString()} is not after \`notBefore\` ${notBefore.toISOString()}`)
  }
  // RFC 5280 §6.1.3: a certificate cannot outlive its issuer in any useful way.
  if (notAfter.getTime() > caNotAfter.getTime()) {
    throw invalidInput('notAfter', `${notAfter.toISOString()} is after the CA expires (${caNotAfter.toISOString()})`)
  }
  return { notBefore, notAfter }
}

/** A date given as a Date or an ISO 8601 string; `field` names it in the error. */
export function parseDate (field: string, value: string | Date): Date {
  const date = value instanceof Date ? value : new Date(value)
  if (Number.isNaN(date.getTime())) throw invalidInput(field, `"${printable(String(value))}" is not an ISO 8601 date`, 'e.g. 2027-01-31T00:00:00Z')
  return date
}

/** A CRL signed now: thisUpdate backdated a few minutes, nextUpdate `days` on. */
export function crlWindow (now: Date, days: number): { thisUpdate: Date, nextUpdate: Date } {
  const { notBefore, notAfter } = windowFor(now, days)
  return { thisUpdate: notBefore, nextUpdate: notAfter }
}

/** A CRL is re-signed when the one in force lapses within `withinDays`, or none could be read (undefined). */
export function crlRefreshDue (nextUpdate: Date | undefined, now: Date, withinDays: number): boolean {
  return !(nextUpdate && nextUpdate.getTime() - now.getTime() > withinDays * DAY_MS)
}

/** Revoked certificates that expired before this date leave the CRL. */
export function crlKeepExpiredSince (now: Date, keepExpiredDays: number): Date {
  return new Date(now.getTime() - keepExpiredDays * DAY_MS)
}

/**
 * A certificate's status at `now`: what the CA decided (revoked, pending)
 * first, then its validity window — a superseded certificate that has
 * expired reads expired; notAfter itself is still valid.
 */
export function effectiveStatus (record: Pick<InventoryRecord, 'status' | 'notBefore' | 'notAfter'>, now: Date): InventoryStatus {
  if (record.status === 'revoked') return 'revoked'
  if (record.status === 'pending') return 'pending'
  if (Date.parse(record.notAfter) < now.getTime()) return 'expired'
  if (record.status === 'superseded') return 'superseded'
  if (Date.parse(record.notBefore) > now.getTime()) return 'not-yet-valid'
  return 'active'
}
