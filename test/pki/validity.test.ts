import { describe, expect, it } from 'vitest'
import {
  backdated, crlKeepExpiredSince, crlRefreshDue, crlWindow, DAY_MS, DEFAULT_DEVICE_DAYS, deviceValidity, effectiveStatus,
  parseDate, type ValidityInput, windowFor,
} from '../../pki/validity.ts'
import type { PlaceGuardError } from '../../shared/errors.ts'
import { inputRefusal } from '../helpers/refusal.ts'

const now = new Date('2026-06-01T00:00:00Z')
const ca = new Date(now.getTime() + 3650 * DAY_MS)
const FIVE_MINUTES = 5 * 60_000

function after (days: number): Date {
  return new Date(now.getTime() + days * DAY_MS)
}

/** The refusal deviceValidity gives, naming `field`. */
function refusal (input: ValidityInput, field: string, caNotAfter = ca): PlaceGuardError {
  return inputRefusal(() => deviceValidity(input, now, caNotAfter), field)
}

describe('windowFor', () => {
  it('opens five minutes back, for peers whose clock runs slow, and lasts the days asked', () => {
    expect(backdated(now)).toEqual(new Date(now.getTime() - FIVE_MINUTES))
    expect(windowFor(now, 825)).toEqual({ notBefore: backdated(now), notAfter: after(825) })
  })
})

describe('deviceValidity in days', () => {
  it(`gives ${DEFAULT_DEVICE_DAYS} days from now when nothing is asked`, () => {
    expect(deviceValidity({}, now, ca)).toEqual({ notBefore: backdated(now), notAfter: after(365) })
  })

  it.each([1, 30, 3650])('takes %d days', (days) => {
    expect(deviceValidity({ days }, now, ca)).toEqual({ notBefore: backdated(now), notAfter: after(days) })
  })

  it.each([0, -1, 3651, 1.5, Number.NaN, Number.POSITIVE_INFINITY])('refuses %d days', (days) => {
    expect(refusal({ days }, 'days').message).toBe(`days: ${days} is not a whole number of days from 1 to 3650`)
  })

  it.each([{ notAfter: '2027-01-01' }, { notBefore: '2026-01-01' }, { notBefore: '2026-01-01', notAfter: '2027-01-01' }])('refuses days with %o', (window) => {
    expect(refusal({ days: 30, ...window }, 'days').message).toBe('days: give either `days` or `notBefore`/`notAfter`, not both')
  })
})

describe('deviceValidity as a window', () => {
  it('takes ISO strings and Dates, and a window wholly in the past or the future', () => {
    expect(deviceValidity({ notBefore: '2026-01-01T00:00:00Z', notAfter: '2027-01-01T00:00:00Z' }, now, ca))
      .toEqual({ notBefore: new Date('2026-01-01T00:00:00Z'), notAfter: new Date('2027-01-01T00:00:00Z') })
    expect(deviceValidity({ notBefore: after(-400), notAfter: after(-200) }, now, ca)).toEqual({ notBefore: after(-400), notAfter: after(-200) })
    expect(deviceValidity({ notBefore: after(100), notAfter: after(200) }, now, ca)).toEqual({ notBefore: after(100), notAfter: after(200) })
  })

  it('opens now (backdated) when only notAfter is given', () => {
    expect(deviceValidity({ notAfter: after(10) }, now, ca)).toEqual({ notBefore: backdated(now), notAfter: after(10) })
  })

  it('needs notAfter with notBefore', () => {
    expect(refusal({ notBefore: after(1) }, 'notAfter').message).toBe('notAfter: is required with `notBefore`')
  })

  it('refuses notAfter at or before notBefore, and takes one a millisecond after', () => {
    const start = new Date('2027-01-01T00:00:00Z')
    expect(refusal({ notBefore: start, notAfter: start }, 'notAfter').message)
      .toBe('notAfter: 2027-01-01T00:00:00.000Z is not after `notBefore` 2027-01-01T00:00:00.000Z')
    refusal({ notBefore: start, notAfter: new Date(start.getTime() - 1) }, 'notAfter')
    expect(deviceValidity({ notBefore: start, notAfter: new Date(start.getTime() + 1) }, now, ca).notAfter.getTime()).toBe(start.getTime() + 1)
    // Only notAfter: it must still come after the backdated start.
    refusal({ notAfter: backdated(now) }, 'notAfter')
  })

  it('refuses a date that does not parse, naming which, escaped, with an example', () => {
    const error = refusal({ notBefore: 'yester\nday', notAfter: '2027-01-01' }, 'notBefore')
    expect(error.message).toBe('notBefore: "yester\\nday" is not an ISO 8601 date')
    expect(error.hint).toBe('e.g. 2027-01-31T00:00:00Z')
    refusal({ notBefore: '2026-01-01', notAfter: 'never' }, 'notAfter')
    refusal({ notAfter: new Date(Number.NaN) }, 'notAfter')
    // notBefore is read first: a bad notBefore is reported even without notAfter.
    refusal({ notBefore: 'soon' }, 'notBefore')
  })
})

describe('deviceValidity and the CA', () => {
  it('takes a notAfter up to the CA\'s own, and refuses one a millisecond later', () => {
    expect(deviceValidity({ notAfter: ca }, now, ca).notAfter).toEqual(ca)
    expect(refusal({ notAfter: new Date(ca.getTime() + 1) }, 'notAfter').message)
      .toBe(`notAfter: ${new Date(ca.getTime() + 1).toISOString()} is after the CA expires (${ca.toISOString()})`)
  })

  it('refuses days that would outlive the CA, naming notAfter', () => {
    const caSoon = after(30)
    expect(deviceValidity({ days: 30 }, now, caSoon).notAfter).toEqual(caSoon)
    refusal({ days: 31 }, 'notAfter', caSoon)
    refusal({}, 'notAfter', caSoon) // the default 365 too
  })
})

describe('parseDate', () => {
  it('answers a Date as it is, and reads ISO 8601', () => {
    const date = new Date('2027-01-31T00:00:00Z')
    expect(parseDate('notAfter', date)).toBe(date)
    expect(parseDate('notAfter', '2027-01-31T00:00:00Z')).toEqual(date)
  })
})

describe('CRL timing', () => {
  it('signs a CRL backdated, lapsing after the days given', () => {
    expect(crlWindow(now, 30)).toEqual({ thisUpdate: backdated(now), nextUpdate: after(30) })
  })

  it('is due for re-signing when it lapses within the window (inclusive), has lapsed, or could not be read', () => {
    expect(crlRefreshDue(after(7), now, 7)).toBe(true)
    expect(crlRefreshDue(new Date(after(7).getTime() + 1), now, 7)).toBe(false)
    expect(crlRefreshDue(after(-1), now, 7)).toBe(true)
    expect(crlRefreshDue(undefined, now, 7)).toBe(true)
  })

  it('keeps revoked certificates that expired within the last keepExpiredDays', () => {
    expect(crlKeepExpiredSince(now, 90)).toEqual(after(-90))
  })
})

describe('effectiveStatus', () => {
  const window = { notBefore: '2026-01-01T00:00:00.000Z', notAfter: '2027-01-01T00:00:00.000Z' }
  const at = (iso: string): Date => new Date(iso)

  it('reads active from notBefore through notAfter itself', () => {
    expect(effectiveStatus({ ...window, status: 'active' }, at(window.notBefore))).toBe('active')
    expect(effectiveStatus({ ...window, status: 'active' }, at(window.notAfter))).toBe('active')
  })

  it('reads expired a millisecond after notAfter, and not-yet-valid a millisecond before notBefore', () => {
    expect(effectiveStatus({ ...window, status: 'active' }, at('2027-01-01T00:00:00.001Z'))).toBe('expired')
    expect(effectiveStatus({ ...window, status: 'active' }, at('2025-12-31T23:59:59.999Z'))).toBe('not-yet-valid')
  })

  it('puts what the CA decided first: revoked and pending whatever the window, superseded until it expires', () => {
    const later = at('2030-01-01T00:00:00Z')
    const earlier = at('2025-01-01T00:00:00Z')
    expect(effectiveStatus({ ...window, status: 'revoked' }, later)).toBe('revoked')
    expect(effectiveStatus({ ...window, status: 'pending' }, later)).toBe('pending')
    expect(effectiveStatus({ ...window, status: 'superseded' }, at('2026-06-01T00:00:00Z'))).toBe('superseded')
    expect(effectiveStatus({ ...window, status: 'superseded' }, earlier)).toBe('superseded')
    expect(effectiveStatus({ ...window, status: 'superseded' }, later)).toBe('expired')
  })
})
