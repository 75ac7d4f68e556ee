/**
 * Control commands: what the collector (or an operator's CLI) asks the
 * broker to do, on QUARANTINE_CONTROL_TOPIC. A message contract between
 * rooms, validated where it is received (the broker).
 */
import { z } from 'zod'
import { ID_PATTERN } from './ids.ts'

/** An operator can always lift sooner; a quarantine longer than this is a revocation. */
export const MAX_QUARANTINE_MS = 30 * 86_400_000

const text = (max: number) => z.string().min(1).max(max)

export const quarantineCommandSchema = z.discriminatedUnion('action', [
  z.strictObject({
    action: z.literal('quarantine'),
    deviceId: z.string().regex(ID_PATTERN),
    durationMs: z.number().int().positive().max(MAX_QUARANTINE_MS),
    reason: text(500),
    by: text(120),
    alertId: text(64).optional(),
    policy: text(64).optional(),
  }),
  z.strictObject({
    action: z.literal('lift'),
    deviceId: z.string().regex(ID_PATTERN),
    by: text(120),
    reason: text(500).optional(),
  }),
])

export type QuarantineCommand = z.infer<typeof quarantineCommandSchema>

/** Parses a control message; the error names the field that is wrong. */
export function parseQuarantineCommand (payload: Buffer): { command: QuarantineCommand } | { error: string } {
  let json: unknown
  try {
    json = JSON.parse(payload.toString('utf8'))
  } catch {
    return { error: 'control message is not JSON' }
  }
  const result = quarantineCommandSchema.safeParse(json)
  if (result.success) return { command: result.data }
  const issue = result.error.issues[0]!
  return { error: `control message: ${issue.path.join('.') || '(root)'}: ${issue.message}` }
}
