/**
 * Quiet windows: when findings do not become alerts. Two kinds, both in
 * the policy files and both with a reason an auditor can read:
 *
 * - `maintenance` — planned work on some sites, kinds or devices, once
 *   (`from`/`until`) or every week (`weekly`). By default it quiets only
 *   what maintenance itself causes (silence, reconnects, reboots, firmware
 *   rolled back, odd readings); a foreign certificate, a cloned identity or
 *   an ACL violation still raises an alert during maintenance.
 * - `suppressions` — named policies quieted for named devices or sites
 *   until a date (a known false positive, a device awaiting replacement).
 *   Always ends: a suppression without `until` is refused.
 *
 * Pure: `quietWindowFor(windows, finding, nowMs)`.
 */
import { z } from 'zod'
import { durationSchema } from '../shared/duration.ts'
import { DEVICE_KINDS } from '../shared/ids.ts'
import { POLICY_IDS, type PolicyId } from './catalogue.ts'

/** What planned work makes devices do; quieted by a maintenance window unless it lists its own policies. */
export const MAINTENANCE_POLICIES: readonly PolicyId[] = [
  'device-silent', 'connection-flapping', 'rate-burst', 'firmware-downgrade', 'value-implausible', 'replay', 'clock-skew', 'payload-invalid',
  // LoRaWAN: a battery swap restarts an ABP device's counter and rejoins; moving a gateway or a device shifts paths and signal.
  'lorawan-fcnt-reset', 'lorawan-join-flood', 'lorawan-gateway-shift', 'lorawan-signal-shift',
]

const WEEKDAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const
const MINUTES_PER_WEEK = 7 * 1_440

const timeZone = z.string().refine((zone) => {
  try {
    new Intl.DateTimeFormat('en-GB', { timeZone: zone })
    return true
  } catch {
    return false
  }
}, 'must be an IANA time zone such as Europe/London')

const instant = z.iso.datetime({ offset: true }).transform((value) => Date.parse(value))

const scope = {
  sites: z.array(z.string().min(1)).min(1).optional(),
  kinds: z.array(z.enum(DEVICE_KINDS)).min(1).optional(),
  devices: z.array(z.string().min(1)).min(1).optional(),
}

const weekly = z.strictObject({
  days: z.array(z.enum(WEEKDAYS)).min(1),
  /** Local wall-clock time in `timeZone`, so a 02:00 window stays at 02:00 across daylight saving. */
  start: z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'must be a time of day such as 02:00'),
  duration: durationSchema.refine((ms) => ms > 0 && ms <= 7 * 86_400_000, 'must be between 1 minute and 7 days'),
  timeZone: timeZone.default('Europe/London'),
})

const hasScope = (window: { sites?: unknown, kinds?: unknown, devices?: unknown }): boolean =>
  window.sites !== undefined || window.kinds !== undefined || window.devices !== undefined

export const maintenanceSchema = z.strictObject({
  reason: z.string().min(1),
  ...scope,
  policies: z.array(z.enum(POLICY_IDS)).min(1).optional(),
  from: instant.optional(),
  until: instant.optional(),
  weekly: weekly.optional(),
})
  .refine(hasScope, { message: 'give sites, kinds or devices: a maintenance window for the whole fleet would hide everything' })
  .refine((w) => (w.weekly !== undefined) !== (w.from !== undefined && w.until !== undefined), { message: 'give either from and until, or weekly' })
  .refine((w) => w.from === undefined || w.until === undefined || w.from < w.until, { message: 'from must be before until', path: ['until'] })

export const suppressionSchema = z.strictObject({
  reason: z.string().min(1),
  ...scope,
  policies: z.array(z.enum(POLICY_IDS)).min(1),
  from: instant.optional(),
  until: instant,
})
  .refine(hasScope, { message: 'give sites, kinds or devices: to quiet a policy everywhere, disable it' })

export interface QuietWindow {
  type: 'maintenance' | 'suppression'
  reason: string
  sites?: string[]
  kinds?: string[]
  devices?: string[]
  policies: readonly PolicyId[]
  fromMs?: number
  untilMs?: number
  weekly?: z.infer<typeof weekly>
}

export function maintenanceWindow (entry: z.infer<typeof maintenanceSchema>): QuietWindow {
  return { type: 'maintenance', reason: entry.reason, sites: entry.sites, kinds: entry.kinds, devices: entry.devices,
    policies: entry.policies ?? MAINTENANCE_POLICIES, fromMs: entry.from, untilMs: entry.until, weekly: entry.weekly }
}

export function suppressionWindow (entry: z.infer<typeof suppressionSchema>): QuietWindow {
  return { type: 'suppression', reason: entry.reason, sites: entry.sites, kinds: entry.kinds, devices: entry.devices,
    policies: entry.policies, fromMs: entry.from, untilMs: entry.until }
}

export interface Subject { policy: PolicyId, deviceId: string, site?: string | null, kind?: string | null }

/** The first window that quiets this finding at `nowMs`, if any. */
export function quietWindowFor (windows: readonly QuietWindow[], subject: Subject, nowMs: number): QuietWindow | undefined {
  return windows.find((window) => covers(window, subject) && isOpen(window, nowMs))
}

function covers (window: QuietWindow, subject: Subject): boolean {
  if (!window.policies.includes(subject.policy)) return false
  if (window.devices && !window.devices.includes(subject.deviceId)) return false
  if (window.sites && (!subject.site || !window.sites.includes(subject.site))) return false
  if (window.kinds && (!subject.kind || !window.kinds.includes(subject.kind))) return false
  return true
}

export function isOpen (window: QuietWindow, nowMs: number): boolean {
  if (window.fromMs !== undefined && nowMs < window.fromMs) return false
  if (window.untilMs !== undefined && nowMs >= window.untilMs) return false
  if (!window.weekly) return true
  const { days, start, duration, timeZone: zone } = window.weekly
  const now = minuteOfWeek(nowMs, zone)
  const [hours, minutes] = start.split(':').map(Number) as [number, number]
  const durationMinutes = duration / 60_000
  // A window that starts late on one day runs on into the next (and Sunday into Monday).
  return days.some((day) => {
    const opens = WEEKDAYS.indexOf(day) * 1_440 + hours * 60 + minutes
    return (now - opens + MINUTES_PER_WEEK) % MINUTES_PER_WEEK < durationMinutes
  })
}

const formatters = new Map<string, Intl.DateTimeFormat>()

/** Minutes since Monday 00:00 on the wall clock of `zone`. */
function minuteOfWeek (nowMs: number, zone: string): number {
  let format = formatters.get(zone)
  if (!format) {
    format = new Intl.DateTimeFormat('en-GB', { timeZone: zone, weekday: 'short', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' })
    formatters.set(zone, format)
  }
  const parts = Object.fromEntries(format.formatToParts(nowMs).map((part) => [part.type, part.value]))
  const day = WEEKDAYS.indexOf(String(parts.weekday).toLowerCase().slice(0, 3) as typeof WEEKDAYS[number])
  return day * 1_440 + Number(parts.hour) * 60 + Number(parts.minute)
}
