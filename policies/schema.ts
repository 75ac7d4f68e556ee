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

/** rate-burst's `factor` when a policy file leaves it out; the engine holds devices without a rate-burst policy to it too. */
export const DEFAULT_BURST_FACTOR = 5

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
    factor: z.number().gt(1).default(DEFAULT_BURST_FACTOR), zScore: z.number().positive().default(4), warmupMessages: z.number().int().positive().default(20),
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
  policy('supplier-access-outside-window', { threshold: z.number().int().positive().default(1), window: duration.default(600_000) }),
  policy('payload-invalid', { threshold: z.number().int().positive().default(1), window: duration.default(600_000) }),
  policy('clock-skew', { maxSkew: duration.default(300_000) }),
  policy('replay', {}),
  // LoRaWAN devices behind a network server (issue 16): judged on what the integration publishes, per device.
  policy('lorawan-unknown-device', {
    /** Severity when the DevEUI is registered to another integration (spoofing, or a device moved without re-registering). */
    registeredElsewhereSeverity: z.enum(SEVERITIES).default('critical'),
    /** One unknown (integration, DevEUI) is reported again at most this often while it keeps sending: one alert, kept fresh. */
    repeatAfter: duration.refine((ms) => ms >= 60_000, 'must be at least 1m').default(3_600_000),
    /** Unknown DevEUIs of one integration alerted one by one within `repeatAfter`; past it, one alert for the integration (`lorawan:<id>:unregistered`). */
    devEuisPerIntegration: z.number().int().positive().default(20),
  }),
  policy('lorawan-fcnt-reset', {
    /** The largest forward step across a counter wrap (LoRaWAN 1.0.x MAX_FCNT_GAP): a bigger one is a counter that went back. */
    maxFrameGap: z.number().int().positive().max(0x8000_0000).default(16_384),
    /** The same frame counter again within this is a retransmission (confirmed retries and NbTrans repeats reuse FCnt); later, a replay. */
    retransmitWindow: duration.refine((ms) => ms > 0, 'must be positive').default(300_000),
  }),
  policy('lorawan-join-flood', {
    /** Joins of one device within `window` that are a flood (a device rejoins on reboot or lost link, rarely twice in an hour). */
    deviceJoins: z.number().int().min(2).default(4),
    /** Repeat joins (a device's second and later in `window`) across one integration that are a flood; first joins are what a power cut looks like. */
    integrationRepeats: z.number().int().min(2).default(20),
    window: duration.refine((ms) => ms > 0, 'must be positive').default(3_600_000),
  }),
  policy('lorawan-gateway-shift', {
    /**
     * Uplinks and time before a device's usual gateways are trusted as learned (cold start). At LoRaWAN rates the uplinks
     * are what takes long (20 at 10 min: over 3 h); the time keeps a device that floods its first minutes from being learned at once.
     */
    learningUplinks: z.number().int().positive().default(20),
    learningPeriod: duration.default(600_000),
    /** Uplinks heard only by gateways the device never used, among its last `recentUplinks`, that make a shift (not one odd path). */
    shiftedUplinks: z.number().int().positive().max(100).default(3),
    recentUplinks: z.number().int().positive().max(100).default(6),
    /**
     * A usual gateway is up around an uplink when it heard other devices before and after it with no silence longer than
     * this between: the device not being heard there is then the device's doing, not an outage.
     */
    gatewayAliveWindow: duration.refine((ms) => ms > 0, 'must be positive').default(1_800_000),
  }).refine((p) => p.params.shiftedUplinks <= p.params.recentUplinks, { message: 'shiftedUplinks must not exceed recentUplinks', path: ['params', 'shiftedUplinks'] }),
  policy('lorawan-signal-shift', {
    /** Readings per gateway before its baseline is judged against. */
    minSamples: z.number().int().min(3).max(500).default(12),
    /** A reading this many robust deviations from the gateway's baseline is off it… */
    deviations: z.number().positive().default(3),
    /** …and at least this far in dB (a very steady link has a tiny spread). */
    minRssiShiftDb: z.number().positive().default(10),
    minSnrShiftDb: z.number().positive().default(6),
    /** Consecutive uplinks off the baseline at most of the gateways that know the device: a shift, not a fade. */
    uplinks: z.number().int().positive().default(4),
    /** Consecutive shifted uplinks after which the new level is learned as the baseline (a device moved for good alerts once). */
    relearnAfter: z.number().int().positive().default(24),
  }).refine((p) => p.params.uplinks <= p.params.relearnAfter, { message: 'uplinks must not exceed relearnAfter', path: ['params', 'uplinks'] }),
])

/** A policy file: policies, and/or the windows in which their findings stay quiet (quiet-windows.ts). */
export const policyFileSchema = z.strictObject({
  policies: z.array(policySchema).min(1).optional(),
  maintenance: z.array(maintenanceSchema).min(1).optional(),
  suppressions: z.array(suppressionSchema).min(1).optional(),
}).refine((file) => file.policies || file.maintenance || file.suppressions, { message: 'a policy file holds policies, maintenance or suppressions' })

export type Policy = z.infer<typeof policySchema>
export type PolicyOf<I extends Policy['id']> = Extract<Policy, { id: I }>
