import { z } from 'zod'
import { invalidInput } from './errors.ts'

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** Parses "500ms", "10s", "2m", "1h", "7d" (or a bare number of seconds) into milliseconds. */
export function parseDuration (field: string, value: string | number): number {
  if (typeof value === 'number') return value * 1000
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(value.trim())
  if (!match) throw invalidInput(field, `"${value}" is not a duration`, 'e.g. 500ms, 10s, 5m, 1h, 7d')
  return Math.round(Number(match[1]) * UNITS[match[2] ?? 's']!)
}

/** A duration in a YAML file ("30s", "5m", or seconds as a number), as milliseconds. */
export const durationSchema = z.union([z.string(), z.number()]).transform((value, context) => {
  try {
    return parseDuration('duration', value)
  } catch {
    context.addIssue({ code: 'custom', message: `"${value}" is not a duration (e.g. 500ms, 10s, 5m, 7d)` })
    return z.NEVER
  }
})

/**
 * A duration for a person, in the unit that fits: "800 ms", "2.5 s",
 * "20 s", "4 min", "3.5 h", "2 d" — never "0 s" for something that is not nothing.
 */
export function formatDuration (ms: number): string {
  const abs = Math.abs(ms)
  const fit = (value: number, unit: string) => `${value < 10 ? Math.round(value * 10) / 10 : Math.round(value)} ${unit}`
  if (abs < 1) return ms === 0 ? '0 ms' : '<1 ms'
  if (abs < 1_000) return `${Math.round(ms)} ms`
  if (abs < 60_000) return fit(ms / 1_000, 's')
  if (abs < 3_600_000) return fit(ms / 60_000, 'min')
  if (abs < 86_400_000) return fit(ms / 3_600_000, 'h')
  return fit(ms / 86_400_000, 'd')
}
