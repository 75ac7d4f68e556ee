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
import { weeklyWindowOpen, weeklyWindowSchema, type WeeklyWindow } from '../shared/access-windows.ts'
import { DEVICE_KINDS } from '../shared/ids.ts'
import { POLICY_IDS, type PolicyId } from './catalogue.ts'

/** What planned work makes devices do; quieted by a maintenance window unless it lists its own policies. */
export const MAINTENANCE_POLICIES: readonly PolicyId[] = [
  'device-silent', 'connection-flapping', 'rate-burst', 'firmware-downgrade', 'value-implausible', 'replay', 'clock-skew', 'payload-invalid',
  // LoRaWAN: a battery swap restarts an ABP device's counter and rejoins; moving a gateway or a device shifts paths and signal.
  'lorawan-fcnt-reset', 'lorawan-join-flood', 'lorawan-gateway-shift', 'lorawan-signal-shift',
]

const instant = z.iso.datetime({ offset: true }).transform((value) => Date.parse(value))

const scope = {
  sites: z.array(z.string().min(1)).min(1).optional(),
  kinds: z.array(z.enum(DEVICE_KINDS)).min(1).optional(),
  devices: z.array(z.string().min(1)).min(1).optional(),
}

const hasScope = (window: { sites?: unknown, kinds?: unknown, devices?: unknown }): boolean =>
  window.sites !== undefined || window.kinds !== undefined || window.devices !== undefined

export const maintenanceSchema = z.strictObject({
  reason: z.string().min(1),
  ...scope,
  policies: z.array(z.enum(POLICY_IDS)).min(1).optional(),
  from: instant.optional(),
  until: instant.optional(),
  weekly: weeklyWindowSchema.optional(),
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
  weekly?: WeeklyWindow
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
  return !window.weekly || weeklyWindowOpen(window.weekly, nowMs)
}
