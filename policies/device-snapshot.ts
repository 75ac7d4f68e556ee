/**
 * What the engine has learned about some devices, as plain JSON: so that
 * a device's history can follow it to another collector (a partition
 * moving in a collector group, docs/cluster.md) or across a restart.
 *
 * Versioned: a reader takes only the version it knows and ignores any
 * other with a reason (an older collector's snapshot, or a newer one's
 * during a rolling upgrade), never crashes on it. A snapshot that does not
 * validate is ignored whole: a device learned afresh is a known cost; a
 * half-read history that invents a previous seq is not.
 */
import { z } from 'zod'
import { DEVICE_KINDS, ID_PATTERN } from '../shared/ids.ts'
import { POLICY_IDS } from './catalogue.ts'
import { FINGERPRINTS_MAX } from './rules/replay.ts'
import { MAX_CLAIMS_PER_ADDRESS } from './rules/event-window.ts'
import { FRAMES_KEPT } from './rules/lorawan-fcnt-reset.ts'
import { GATEWAYS_LEARNED, PENDING_KEPT } from './rules/lorawan-gateway-shift.ts'
import { DEVICE_JOINS_KEPT } from './rules/lorawan-join-flood.ts'
import { BASELINES_KEPT } from './rules/lorawan-signal-shift.ts'

/** 2 added the LoRaWAN state (issue 16); a version 1 snapshot is still read, its devices' LoRaWAN state learned afresh. */
export const DEVICE_SNAPSHOT_VERSION = 2
const READABLE_VERSIONS: readonly number[] = [1, 2]
/** Bounds on what a snapshot may hold (the engine's own bounds, with room). */
const MAX_DEVICES = 200_000
const MAX_WINDOWS = 50_000
const MAX_TIMES = 5_000

const ms = z.number()
const id = z.string().regex(ID_PATTERN)

const deviceRecord = z.strictObject({
  deviceId: id,
  kind: z.enum(DEVICE_KINDS),
  site: id,
  /** The last message in order: what replay, downgrade and implausible steps compare with. */
  previous: z.strictObject({ seq: z.number().int().nonnegative(), ts: ms, fw: z.string().max(64), readings: z.record(z.string().max(64), z.number()) }).nullable(),
  firstSeenMs: ms,
  lastSeenMs: ms,
  lastHeardMs: ms,
  messages: z.number().int().nonnegative(),
  lagMs: ms.nullable(),
  /** The learned interval between messages (ms), and the first intervals while still warming up. */
  intervalMs: ms.nullable(),
  firstIntervals: z.array(ms).max(100).nullable(),
  /** Arrival times inside the rate window. */
  recent: z.array(ms).max(MAX_TIMES),
  /** The last messages' fingerprints, to recognise the broker's (or a stream's) redelivery of them. */
  seen: z.array(z.strictObject({ seq: z.number().int().nonnegative(), ts: ms, content: z.number().int().nonnegative(), firstSeenMs: ms })).max(FINGERPRINTS_MAX),
})

const windowRecord = z.strictObject({
  policy: z.enum(POLICY_IDS),
  /** A device id: windows keyed by a source address belong to no device and do not travel. */
  key: id,
  times: z.array(ms).max(MAX_TIMES),
  claims: z.array(z.string().max(256)).max(MAX_CLAIMS_PER_ADDRESS),
  claimsNotKept: z.number().int().nonnegative(),
  expiresAtMs: ms,
})

const gatewayId = z.string().min(1).max(128)
const dB = z.number().min(-1_000).max(1_000)

/** What the LoRaWAN policies learned of a device behind a network server (policies/lorawan-detector.ts). */
const lorawanRecord = z.strictObject({
  deviceId: id,
  integrationId: id,
  kind: z.string().max(64),
  site: id,
  lastHeardMs: ms,
  frames: z.strictObject({
    history: z.array(z.strictObject({ event: z.enum(['up', 'join']), atMs: ms, fCnt: z.number().int().min(0).max(0xffff_ffff).nullable() })).max(FRAMES_KEPT),
    reset: z.strictObject({ atMs: ms, previousAtMs: ms }).nullable(),
  }),
  joins: z.array(ms).max(DEVICE_JOINS_KEPT),
  gateways: z.strictObject({
    firstAtMs: ms.nullable(),
    uplinks: z.number().int().nonnegative(),
    learned: z.array(z.tuple([gatewayId, z.number().int().positive()])).max(GATEWAYS_LEARNED),
    recent: z.array(z.strictObject({ atMs: ms, mark: z.enum(['usual', 'suspect', 'confirmed']) })).max(100),
    pending: z.array(gatewayId).max(PENDING_KEPT),
  }),
  signal: z.strictObject({
    baselines: z.array(z.strictObject({
      gatewayId, samples: z.number().int().nonnegative(), rssi: dB.nullable(), rssiSigma: dB, snr: dB, snrSigma: dB,
      warmup: z.array(z.tuple([dB.nullable(), dB])).max(500).nullable(),
    })).max(BASELINES_KEPT),
    shifted: z.number().int().nonnegative(),
    steady: z.number().int().nonnegative(),
    alerting: z.boolean(),
  }),
})

export const deviceSnapshotSchema = z.strictObject({
  version: z.union([z.literal(1), z.literal(2)]),
  /** When it was taken, on the exporting engine's clock. */
  takenAtMs: ms,
  devices: z.array(deviceRecord).max(MAX_DEVICES),
  /** Security-event windows of these devices (connection flapping, ACL violations, clones…). */
  windows: z.array(windowRecord).max(MAX_WINDOWS),
  /** The LoRaWAN devices' frames, joins, gateways and radio baselines (version 2). */
  lorawan: z.array(lorawanRecord).max(MAX_DEVICES).optional(),
})

export type DeviceSnapshot = z.infer<typeof deviceSnapshotSchema>
export type DeviceRecord = DeviceSnapshot['devices'][number]
export type WindowRecord = DeviceSnapshot['windows'][number]

/** The snapshot, validated; or why it is not taken. */
export function readDeviceSnapshot (value: unknown): { snapshot: DeviceSnapshot } | { ignored: string } {
  const version = (value !== null && typeof value === 'object' && 'version' in value) ? value.version : undefined
  if (typeof version !== 'number' || !READABLE_VERSIONS.includes(version)) {
    return { ignored: version === undefined ? 'not a device state snapshot (no version)' : `snapshot version ${typeof version === 'number' ? version : typeof version} is not a version this engine reads (${READABLE_VERSIONS.join(', ')})` }
  }
  const parsed = deviceSnapshotSchema.safeParse(value)
  if (parsed.success) return { snapshot: parsed.data }
  const issue = parsed.error.issues[0]!
  return { ignored: `invalid at ${issue.path.join('.') || '(snapshot)'}: ${issue.message}` }
}
