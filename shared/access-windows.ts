/**
 * A supplier's access windows (issue 17): when its remote access is open.
 * The syntax is a maintenance window's timing, and the weekly part is the
 * same code (policies/quiet-windows.ts uses `weeklyWindowSchema` and
 * `weeklyWindowOpen`; docs/policies.md), `from`/`until` once or `weekly` with days, a local
 * start time, a duration and a time zone, so an operator writes both the
 * same way. It lives in shared/ because pki/ stores the windows and the
 * broker opens and closes the access; neither may open policies/.
 *
 * Pure: `openWindow(windows, nowMs)`.
 */
import { z } from 'zod'
import { durationSchema } from './duration.ts'
import { invalidInput } from './errors.ts'

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

/** A window that recurs every week: days, a local start time, a duration, a time zone. Maintenance windows (policies/quiet-windows.ts) use it too. */
export const weeklyWindowSchema = z.strictObject({
  days: z.array(z.enum(WEEKDAYS)).min(1),
  /** Local wall-clock time in `timeZone`, so a 02:00 window stays at 02:00 across daylight saving. */
  start: z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'must be a time of day such as 02:00'),
  duration: durationSchema.refine((ms) => ms > 0 && ms <= 7 * 86_400_000, 'must be between 1 minute and 7 days'),
  timeZone: timeZone.default('Europe/London'),
})

export type WeeklyWindow = z.infer<typeof weeklyWindowSchema>

export const accessWindowSchema = z.strictObject({
  reason: z.string().min(1).optional(),
  from: z.iso.datetime({ offset: true }).optional(),
  until: z.iso.datetime({ offset: true }).optional(),
  weekly: weeklyWindowSchema.optional(),
})
  .refine((w) => (w.weekly !== undefined) !== (w.from !== undefined && w.until !== undefined), { message: 'give either from and until, or weekly' })
  .refine((w) => w.from === undefined || w.until === undefined || Date.parse(w.from) < Date.parse(w.until), { message: 'from must be before until', path: ['until'] })

export type AccessWindow = z.infer<typeof accessWindowSchema>

/**
 * Checks a list of windows (parsed JSON or YAML), naming the field of the
 * first bad one (`windows[1].weekly.start`). A supplier without windows
 * never gets in: an always-open supplier is what this feature removes.
 */
export function assertAccessWindows (field: string, value: unknown): AccessWindow[] {
  const parsed = z.array(accessWindowSchema).min(1, 'give at least one window: a supplier without one can never connect').safeParse(value)
  if (parsed.success) return parsed.data
  const issue = parsed.error.issues[0]!
  const path = issue.path.map((part) => typeof part === 'number' ? `[${part}]` : `.${String(part)}`).join('')
  throw invalidInput(`${field}${path}`, issue.message,
    'give windows as a maintenance window\'s timing: [{"from": "…Z", "until": "…Z"}] or [{"weekly": {"days": ["tue"], "start": "02:00", "duration": "2h"}}]')
}

/** The first window open at `nowMs`, if any. */
export function openWindow (windows: readonly AccessWindow[], nowMs: number): AccessWindow | undefined {
  return windows.find((window) => isOpen(window, nowMs))
}

function isOpen (window: AccessWindow, nowMs: number): boolean {
  if (window.from !== undefined && nowMs < Date.parse(window.from)) return false
  if (window.until !== undefined && nowMs >= Date.parse(window.until)) return false
  return !window.weekly || weeklyWindowOpen(window.weekly, nowMs)
}

/** Whether a weekly window is open at `nowMs`. A window that starts late on one day runs on into the next (and Sunday into Monday). */
export function weeklyWindowOpen ({ days, start, duration, timeZone: zone }: WeeklyWindow, nowMs: number): boolean {
  const now = minuteOfWeek(nowMs, zone)
  const [hours, minutes] = start.split(':').map(Number) as [number, number]
  const durationMinutes = duration / 60_000
  return days.some((day) => {
    const opens = WEEKDAYS.indexOf(day) * 1_440 + hours * 60 + minutes
    return (now - opens + MINUTES_PER_WEEK) % MINUTES_PER_WEEK < durationMinutes
  })
}

/** One formatter per zone: building one costs far more than using it, and the broker asks at every supplier command. */
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
