/**
 * The policy files operators edit (`policies/*.yaml`): which policies run,
 * how severe their alerts are, their thresholds, where they apply, and what
 * PlaceGuard does about them. Validated here; errors name file, line, field.
 */
import semver from 'semver'
import { z } from 'zod'
import { SEVERITIES, type Severity } from '../shared/alert-contract.ts'
import { DEVICE_KINDS } from '../shared/ids.ts'
import { durationSchema } from '../shared/duration.ts'
import { maintenanceSchema, suppressionSchema } from './quiet-windows.ts'

export { SEVERITIES, type Severity }

const duration = durationSchema
const version = z.string().refine((value) => semver.valid(value) !== null, 'must be a semantic version like 3.1.0')
const range = z.string().refine((value) => semver.validRange(value) !== null, 'must be a semver range like "<3.1.2" or "2.x"')
const kind = z.enum(DEVICE_KINDS)
const perKind = <T extends z.ZodType>(value: T) => z.partialRecord(kind, value)

const common = {
  enabled: z.boolean().default(true),
  severity: z.enum(SEVERITIES),
  /** Limit the policy to some kinds, sites or devices; absent = the whole fleet. */
  scope: z.strictObject({
    kinds: z.array(kind).min(1).optional(),
    sites: z.array(z.string()).min(1).optional(),
    devices: z.array(z.string()).min(1).optional(),
  }).optional(),
  /** Automated response, off unless configured: quarantine the device at the broker for a while. */
  response: z.strictObject({ quarantine: z.strictObject({ duration }) }).optional(),
}

const policy = <I extends string, P extends z.ZodRawShape>(id: I, params: P) =>
  z.strictObject({ id: z.literal(id), ...common, params: z.strictObject(params).prefault({} as z.input<z.ZodObject<P>>) })

const readingBounds = z.strictObject({
  min: z.number().optional(),
  max: z.number().optional(),
  /** Largest change between two consecutive readings that physics allows. */
  maxStep: z.number().positive().optional(),
  /** A meter: the value never decreases. */
  monotonic: z.boolean().optional(),
})

export const policySchema = z.discriminatedUnion('id', [
  policy('cert-expiry', { warnDays: z.number().positive().default(30), criticalDays: z.number().positive().default(7) }),
  policy('cert-rejected', { threshold: z.number().int().positive().default(1), window: duration.default(600_000) }),
  policy('cert-revoked-attempt', { threshold: z.number().int().positive().default(1), window: duration.default(600_000) }),
  policy('firmware-outdated', { minimum: perKind(version).default({}) }),
  policy('firmware-vulnerable', {
    denylist: z.array(z.strictObject({ kind: kind.optional(), range, advisory: z.string().min(1), note: z.string().optional() })).default([]),
    /** Match synced CSAF/OSV advisories too (`placeguard advisories sync`, docs/advisories.md) on the device's vendor and model. */
    advisories: z.boolean().default(true),
  }),
  policy('firmware-downgrade', {}),
  policy('rate-burst', {
    factor: z.number().gt(1).default(5), zScore: z.number().positive().default(4), warmupMessages: z.number().int().positive().default(20),
    /** A baseline is trusted only after this long too: a device flooding from its first message would otherwise learn its flood as its baseline. */
    warmupPeriod: duration.default(20_000),
    /** Messages a minute no device of the kind may exceed, warm or cold; absent: what the broker's default publish budget lets through. */
    ceilingPerMinute: perKind(z.number().positive()).default({}),
  }),
  policy('device-silent', { missedIntervals: z.number().positive().default(3), expectedInterval: perKind(duration).default({}), warmupMessages: z.number().int().positive().default(5) }),
  policy('acl-violation', { threshold: z.number().int().positive().default(1), window: duration.default(600_000) }),
  policy('identity-clone', { threshold: z.number().int().positive().default(2), window: duration.default(300_000) }),
  policy('connection-flapping', { connects: z.number().int().min(2).default(5), window: duration.default(300_000) }),
  policy('value-implausible', { readings: perKind(z.record(z.string(), readingBounds)).default({}) }),
  policy('payload-invalid', { threshold: z.number().int().positive().default(1), window: duration.default(600_000) }),
  policy('clock-skew', { maxSkew: duration.default(300_000) }),
  policy('replay', {}),
])

/** A policy file: policies, and/or the windows in which their findings stay quiet (quiet-windows.ts). */
export const policyFileSchema = z.strictObject({
  policies: z.array(policySchema).min(1).optional(),
  maintenance: z.array(maintenanceSchema).min(1).optional(),
  suppressions: z.array(suppressionSchema).min(1).optional(),
}).refine((file) => file.policies || file.maintenance || file.suppressions, { message: 'a policy file holds policies, maintenance or suppressions' })

export type Policy = z.infer<typeof policySchema>
export type PolicyOf<I extends Policy['id']> = Extract<Policy, { id: I }>
