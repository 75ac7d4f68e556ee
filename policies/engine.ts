/**
 * The policy engine: feeds telemetry, security events, certificates and
 * LoRaWAN network servers' events to the rules, with the per-device memory they need, and answers findings
 * (conditions that hold) and clears (conditions that stopped holding).
 * Pure apart from the injected clock: no sockets, timers or files here.
 */
import type { LorawanObservation } from '../shared/lorawan.ts'
import type { SecurityEvent } from '../shared/security-events.ts'
import type { AdvisoryIndex, DeviceProduct } from '../shared/advisory-match.ts'
import { type Clock, systemClock } from '../shared/clock.ts'
import type { PolicyId } from './catalogue.ts'
import { DEVICE_SNAPSHOT_VERSION, type DeviceRecord, type DeviceSnapshot, readDeviceSnapshot, type WindowRecord } from './device-snapshot.ts'
import type { Finding, PreviousTelemetry, TelemetryObservation } from './finding.ts'
import { LorawanDetector } from './lorawan-detector.ts'
import { type QuietWindow, quietWindowFor } from './quiet-windows.ts'
import { DEFAULT_BURST_FACTOR, type Policy, type PolicyOf } from './schema.ts'
import { certExpiryRule, type CertificateFacts } from './rules/cert-expiry.ts'
import { clockSkewRule } from './rules/clock-skew.ts'
import { deviceSilentRule } from './rules/device-silent.ts'
import { emptyWindow, eventWindowRule, policyForEvent, type WindowPolicy, type WindowState } from './rules/event-window.ts'
import { firmwareDowngradeRule } from './rules/firmware-downgrade.ts'
import { firmwareOutdatedRule } from './rules/firmware-outdated.ts'
import { firmwareVulnerableRule } from './rules/firmware-vulnerable.ts'
import { brokerThrottleRule, isChronicBaseline, isWarm, MIN_PEER_GROUP, type PeerStats, peerStats, rateBurstRule } from './rules/rate-burst.ts'
import { FINGERPRINTS_KEPT, FINGERPRINTS_MAX, fingerprintOf, isReboot, isRedelivery, type MessageFingerprint, replayRule, RESEND_WINDOW_MS } from './rules/replay.ts'
import { valueImplausibleRule } from './rules/value-implausible.ts'

export interface Clear { policy: PolicyId, deviceId: string, reason: string }
/** What importDevices took in, or why it took nothing. */
export interface DeviceImport { devices: number, windows: number, lorawan?: number, ignored?: string }
/** A finding that a maintenance window or suppression kept from becoming an alert. */
export interface Quieted { finding: Finding, window: QuietWindow }
export interface Verdict {
  findings: Finding[]
  clears: Clear[]
  quieted?: Quieted[]
  /**
   * For telemetry: how much later than usual for its device this message
   * arrived (its receive − send lag beyond the device's learned lag), ms.
   * The collector reads a fleet of these to tell that it is behind.
   */
  backlogMs?: number
}

interface DeviceState {
  kind: TelemetryObservation['kind']
  site: string
  previous: PreviousTelemetry | undefined
  /** When the device last sent, on the broker's clock as near as the engine can tell (see #arrival). */
  lastSeenMs: number
  /**
   * When PlaceGuard last heard the device (the message's receive time):
   * silence is PlaceGuard's not hearing, so it is counted from here, not
   * from lastSeenMs, which during a replay is the device's send time and
   * trails the receive time by however far the collector is behind.
   */
  lastHeardMs: number
  /** When the device was first seen (same clock as lastSeenMs). */
  firstSeenMs: number
  messages: number
  /** EWMA of receive time − the device's own `ts`, learned while PlaceGuard keeps up: its clock offset plus the usual transit. */
  lagMs: number | undefined
  /**
   * The same, learned also while behind from messages that arrive at the
   * pace they were sent (atLivePace): what lateness is measured against.
   * Not persisted: a restored device starts from its lagMs.
   */
  liveLagMs?: number
  /** The engine's time-behind total at the device's last message: silence since then excludes the difference. */
  deafAtLastSeenMs: number
  /** EWMA of the interval between messages, ms; learned only while not bursting. */
  intervalMs: number | undefined
  /** The first intervals, until warm: their median seeds the EWMA, so one odd first gap cannot. */
  firstIntervals: number[] | undefined
  /**
   * The interval as it stood at least one rate window ago (and at most two,
   * while the device sends): what a burst is judged against (see
   * #settle). Not persisted: a restored device is judged on intervalMs.
   */
  settledIntervalMs?: number
  /** The interval recorded at pendingAtMs, to become settledIntervalMs once a rate window has passed. */
  pendingIntervalMs?: number
  pendingAtMs?: number
  /** Arrival times in the rate window (bounded). */
  recent: number[]
  /** The last few messages, to recognise a QoS 1 redelivery (FINGERPRINTS_KEPT, or those of the last RESEND_WINDOW_MS up to FINGERPRINTS_MAX). */
  seen: MessageFingerprint[]
}

const EWMA_WEIGHT = 0.1
/**
 * How long a device must keep to a pace far faster than its baseline for
 * the baseline to move most of the way (63 %) to it: the slow weight below
 * is per unit of time, not per message. Per message (0.005 each), a
 * minute's burst at the broker's budget of 5/s (300 messages) moved a 10 s
 * device's baseline to 3 s, and when it went back to its pace its next
 * ordinary gap was judged device-silent.
 */
const SLOW_ADAPT_MS = 10 * 60_000
const RECENT_CAP = 5_000
/**
 * The "now" of a rate: short enough that a 30 s burst stands out against a
 * per-minute baseline, long enough to hold a few messages of a device on a
 * 2–10 s interval.
 */
const RATE_WINDOW_MS = 10_000
const PER_MINUTE = 60_000 / RATE_WINDOW_MS
/**
 * A device's rate is counted over this many of its own intervals, or the
 * rate window if that is longer, at most MAX_RATE_WINDOW_MS. Counted over
 * 10 s alone, one message of a device that sends every minute was 6 a
 * minute, six times its baseline, and peers with none in those 10 s made
 * it stand out: every such device of a clean fleet was a rate-burst once
 * warm. Over three intervals its ordinary count is 2 to 4, never near the
 * policy's factor; a burst still has to be `factor` times that.
 */
const WINDOW_INTERVALS = 3
const MAX_RATE_WINDOW_MS = 60 * 60_000

/** The window a device's current rate is counted over, for an interval (its baseline's) or none yet. */
function rateWindowFor (intervalMs: number | null | undefined): number {
  return intervalMs ? Math.min(MAX_RATE_WINDOW_MS, Math.max(RATE_WINDOW_MS, WINDOW_INTERVALS * intervalMs)) : RATE_WINDOW_MS
}
/** State for at most this many devices; the least recently seen is forgotten first. */
const MAX_DEVICES = 200_000
/**
 * Security-event windows (per policy and device or source address) kept at
 * once; past it the least recently touched is forgotten and counted. Keys
 * by address are the attacker's to multiply (STRIDE D).
 */
const MAX_WINDOWS = 50_000
/** How often windows whose events have all left them are swept away. */
const WINDOW_SWEEP_MS = 60_000
/** Intervals whose median seeds a device's baseline. */
const WARMUP_INTERVALS = 15
/**
 * An interval between two messages whose seqs are further apart than this
 * is not spread over the messages in between (see #learn): a counter that
 * jumps that far is a reboot or a forged seq, not lost frames.
 */
const MAX_SEQ_GAP = 1_000
/**
 * The shortest silence judged, whatever the device's interval: the
 * pipeline takes a message up to 2 s late as on time and a stall under
 * 2 s as no stall (PipelineHealth's lateMs and stallThresholdMs), so a
 * silence shorter than their sum may be PlaceGuard's own unnoticed delay
 * (STRIDE D against ourselves: a page per device for a busy broker).
 */
export const MIN_SILENCE_MS = 5_000
/** How far back a replayed message may be placed in time: a backlog older than this is history, not a rate. */
const MAX_BACKLOG_MS = 10 * 60_000

/**
 * Whether a message arrived about as long after the device's previous one
 * as it was sent after it: live traffic, not a backlog (read far faster
 * than it was sent) nor the first message after a gap in hearing (a stall,
 * a restart, a reconnect: heard far later than sent).
 */
function atLivePace (state: DeviceState, observation: TelemetryObservation): boolean {
  if (state.previous === undefined || state.lastHeardMs === 0) return false
  const sentGapMs = observation.ts - state.previous.ts
  const heardGapMs = observation.receivedAtMs - state.lastHeardMs
  return sentGapMs > 0 && heardGapMs >= sentGapMs * 3 / 4 && heardGapMs <= sentGapMs * 4 / 3
}

/** A message sent more than this before it arrived (against its device's usual lag) is late: here, and PipelineHealth's default lateMs. */
export const LATE_MS = 2_000

/**
 * When a device sent this message, if it is part of the device's own
 * backlog; undefined if it is not (then it counts when it arrives).
 *
 * A device that could not reach the broker for a while (its network down,
 * the broker restarting) keeps its QoS 1 messages and sends them all on
 * its return, as MQTT clients do. They arrive within a second but were
 * sent at the device's cadence: counted on arrival they are a burst that
 * never happened, and their near-zero gaps would be learned as its
 * interval. The collector's own backlogs are placed by #arrival; this is
 * the same for one device, while the collector keeps up.
 *
 * Its send time (`ts` plus its learned lag) is believed only when all of:
 * - its clock is known (a learned lag) and so is its cadence (a learned interval);
 * - it moves forward in the device's own time and seq;
 * - it was sent well before it arrived (more than LATE_MS);
 * - it was sent after the previous message's place by at least half the
 *   device's own interval per seq: a backlog runs at the device's cadence.
 *
 * A device cannot hide a flood this way: its messages' places advance at
 * least half an interval each and never past LATE_MS before the present,
 * so they fill at most the time it was not heard, at twice its pace; once
 * they reach the present, its messages count when they arrive. A clock
 * set back puts `ts` behind the previous message's, so it is not believed
 * either.
 */
function ownBacklogTime (state: DeviceState, observation: TelemetryObservation): number | undefined {
  const previous = state.previous
  if (previous === undefined || state.lagMs === undefined || state.intervalMs === undefined) return undefined
  const sent = observation.ts + state.lagMs
  if (sent >= observation.receivedAtMs - LATE_MS) return undefined
  const seqGap = observation.seq - previous.seq
  if (observation.ts <= previous.ts || seqGap < 1 || seqGap > MAX_SEQ_GAP) return undefined
  return sent - state.lastSeenMs >= seqGap * state.intervalMs / 2 ? sent : undefined
}

/**
 * A seq this close after the previous one, with an earlier `ts`, is the
 * device's next message sent by a clock set back, not an old message: a
 * stored one that aedes delivers after newer live ones is further back in
 * seq, as is a replayed one.
 */
const CLOCK_STEP_MAX_SEQ_GAP = 10

/**
 * How far the device's clock moved since its previous message, ms: positive
 * if it was set back, negative if forward; undefined if it did not visibly
 * move.
 *
 * A device's clock is set back (an NTP correction of one that ran ahead;
 * a site's time server corrected; a reboot that synced a clock which had
 * drifted) and from then on every message of it arrives "late" against
 * the lag learned before. When most of a site does it at once, that is
 * what the collector's own backlog looks like (PipelineHealth): the
 * collector would hold itself behind — no silence judged, a false
 * pipeline-stalled — and while behind it places messages by the device's
 * clock, so a clock set back put each one before the previous and none
 * became the device's latest: behind for good. A clock set forward makes
 * no message late, but the lag learned before, relearned only slowly,
 * misplaces the device's previous message in time, which the reboot rule
 * and the device's own backlog rely on. A clock that moved is neither a
 * backlog nor a burst, and is told apart by what stays on cadence:
 *
 * - its `ts` went back while its seq moved on by a few: the clock, since
 *   a backlog never sends time backwards;
 * - it rebooted onto a corrected clock (isReboot, `ts` earlier than the
 *   previous message's);
 * - it was heard on its cadence while its `ts` moved on by more than 2 s
 *   less, or more, than that. A stall or a backlog of PlaceGuard's is heard
 *   off cadence and sent on it; transit that varies by more than 2 s
 *   puts the message off cadence too.
 *
 * The step is measured against the cadence (where the `ts` should have
 * been), not against the arrival, so a step seen while the collector is
 * behind does not take the backlog into the device's lag.
 */
function clockStep (state: DeviceState, observation: TelemetryObservation, learnedLag: number | undefined): number | undefined {
  const previous = state.previous
  if (previous === undefined) return undefined
  const seqGap = observation.seq - previous.seq
  const sentGapMs = observation.ts - previous.ts
  const interval = state.intervalMs
  const onSeq = seqGap >= 1 && seqGap <= CLOCK_STEP_MAX_SEQ_GAP
  const fromCadence = (): number => previous.ts + seqGap * interval! - observation.ts
  const fromArrival = (): number => observation.receivedAtMs - observation.ts - (learnedLag ?? 0)
  if (onSeq && sentGapMs < 0) return interval !== undefined ? fromCadence() : fromArrival()
  if (sentGapMs <= 0 && isReboot(observation, previous, learnedLag)) return fromArrival()
  if (!onSeq || interval === undefined || state.lastHeardMs === 0) return undefined
  const heardGapMs = observation.receivedAtMs - state.lastHeardMs
  const heardOnCadence = Math.abs(heardGapMs - seqGap * interval) <= LATE_MS
  return heardOnCadence && Math.abs(heardGapMs - sentGapMs) > LATE_MS ? fromCadence() : undefined
}

/** Intervals seen before the interval is worth settling (settle). */
const MIN_SETTLED_INTERVALS = 3

/**
 * Moves the interval a burst is judged against on, at most once per rate
 * window (the device's, rateWindowMs): the value it had a window ago
 * becomes the judged one.
 *
 * While a device is young its interval is the median of its first few
 * (WARMUP_INTERVALS); a burst that starts before those are filled fills
 * the rest with its own near-zero gaps and becomes the median, so by the
 * time the device is warm its baseline is the burst and the burst is not
 * one. A 4/s burst 26 s after the start of a device sending every 4 s,
 * 16 times its rate, raised nothing. Judged against the interval as it
 * stood a window earlier, before the burst, it is one; later the slow
 * weight for short intervals (#learn) keeps a burst out of the baseline.
 */
function settle (state: DeviceState, now: number): void {
  if (state.pendingAtMs !== undefined && now - state.pendingAtMs < rateWindowMs(state)) return
  state.settledIntervalMs = state.pendingIntervalMs
  // The median of one or two intervals is no baseline yet: the second may be a gap across a reconnect.
  state.pendingIntervalMs = state.firstIntervals === undefined || state.firstIntervals.length >= MIN_SETTLED_INTERVALS ? state.intervalMs : undefined
  state.pendingAtMs = now
}

/** The interval a device's rate is judged against: its settled one (settle), else its interval. */
function baselineIntervalMs (state: DeviceState): number | undefined {
  return state.settledIntervalMs ?? state.intervalMs
}

/** The window a device's current rate is counted over: three of its baseline intervals (rateWindowFor). */
function rateWindowMs (state: DeviceState): number {
  return rateWindowFor(baselineIntervalMs(state))
}

/** Its messages a minute over the last RATE_WINDOW_MS, whatever its interval: what the kind's ceiling is held to. */
function peakPerMinute (state: DeviceState, now: number): number {
  let count = 0
  for (const t of state.recent) if (now - t <= RATE_WINDOW_MS) count++
  return count * PER_MINUTE
}

/** A device's rate baseline for rate-burst, per minute (baselineIntervalMs). */
function baselinePerMinute (state: DeviceState): number | undefined {
  const interval = baselineIntervalMs(state)
  return interval ? 60_000 / interval : undefined
}

/**
 * The interval a device's silence is judged on: its own, learned, unless
 * that was learned from a flood — a baseline that stands out of its
 * crowd's as one (isChronicBaseline: a device that flooded from its first
 * message). Such a device is held to its crowd's median pace instead, so
 * that back from the flood to its proper pace it is not silent at its
 * first ordinary gap.
 */
function silenceIntervalMs (state: DeviceState, learned: ReadonlyMap<string, PeerStats>, factor = DEFAULT_BURST_FACTOR): number | undefined {
  const baseline = baselinePerMinute(state)
  if (baseline === undefined || state.intervalMs === undefined) return state.intervalMs
  const site = learned.get(`${state.kind}/${state.site}`)
  const crowd = site !== undefined && site.size >= MIN_PEER_GROUP ? site : learned.get(state.kind)
  if (!isChronicBaseline(baseline, crowd, factor) || crowd!.median <= 0) return state.intervalMs
  return Math.max(state.intervalMs, 60_000 / crowd!.median)
}

export class PolicyEngine {
  #policies = new Map<PolicyId, Policy>()
  #quietWindows: readonly QuietWindow[] = []
  readonly #clock: Clock
  readonly #devices = new Map<string, DeviceState>()
  /** Devices whose learned state changed since the last `exportDevices(…, { changedOnly: true })`; undefined until trackChanges(). */
  #changed: Set<string> | undefined
  #redeliveries = 0
  readonly #windows = new Map<string, WindowState & { expiresAtMs: number }>()
  #windowsSweptAtMs = 0
  #windowsEvicted = 0
  /** True while the collector or its input is stalled or replaying a backlog (set by the collector). */
  #catchingUp = false
  /** Until when messages may be a resumed session's stored backlog, interleaved with live ones (see #arrival). */
  #replayUntilMs = 0
  /** All the time PlaceGuard has been behind so far, up to #behindSinceMs; a device's silence excludes it. */
  #deafTotalMs = 0
  #behindSinceMs = 0
  /** Devices per kind/site at the last tick, for the storm guard's share. */
  #groupSizes = new Map<string, number>()
  /** Synced advisories and each device's vendor and model, for firmware-vulnerable (setAdvisories, setDeviceProducts). */
  #advisories: AdvisoryIndex | undefined
  #products: ReadonlyMap<string, DeviceProduct> = new Map()
  /** What the LoRaWAN policies learn of devices behind network servers, their gateways and integrations. */
  readonly #lorawan = new LorawanDetector()

  constructor (policies: Policy[], clock: Clock = systemClock, quietWindows: readonly QuietWindow[] = []) {
    this.#clock = clock
    this.setPolicies(policies, quietWindows)
  }

  /** Swaps the policy set and quiet windows (a reload); learned device state is kept. */
  setPolicies (policies: Policy[], quietWindows: readonly QuietWindow[] = []): void {
    this.#policies = new Map(policies.filter((p) => p.enabled).map((p) => [p.id, p]))
    this.#quietWindows = quietWindows
  }

  /** The advisories firmware-vulnerable matches against, as synced (`placeguard advisories sync`). */
  setAdvisories (index: AdvisoryIndex | undefined): void {
    this.#advisories = index
  }

  /** Each device's vendor and model (the inventory's); a device without them is matched by the denylist only. */
  setDeviceProducts (products: ReadonlyMap<string, DeviceProduct>): void {
    this.#products = products
  }

  /** The enabled policy with this id, e.g. to read its `response` (undefined for system alerts). */
  policy (id: string): Policy | undefined {
    return this.#policies.get(id as PolicyId)
  }

  /** A device's current rate against its learned baseline, per minute; undefined until it has reported. */
  rateOf (deviceId: string): { currentPerMinute: number, baselinePerMinute: number | null, messages: number } | undefined {
    const state = this.#devices.get(deviceId)
    if (!state) return undefined
    const now = this.#clock.now()
    const windowMs = rateWindowMs(state)
    const recent = state.recent.filter((t) => now - t <= windowMs).length
    return { currentPerMinute: recent * 60_000 / windowMs, baselinePerMinute: state.intervalMs ? 60_000 / state.intervalMs : null, messages: state.messages }
  }

  get deviceCount (): number {
    return this.#devices.size
  }

  /** Telemetry messages set aside as redeliveries of one already seen. */
  get redeliveries (): number {
    return this.#redeliveries
  }

  /** Security-event windows held, and how many were forgotten early because the bound was reached. */
  get windowStats (): { windows: number, evicted: number } {
    return { windows: this.#windows.size, evicted: this.#windowsEvicted }
  }

  /** Devices of this kind at this site, as of the last tick. */
  groupSize (kind: string, site: string): number {
    return this.#groupSizes.get(`${kind}/${site}`) ?? 0
  }

  /**
   * What the engine has learned about the devices `filter` picks — their
   * last message (seq, time, firmware, readings), interval baseline, lag,
   * arrivals in the rate window and recent fingerprints — the
   * security-event windows keyed by them, and for LoRaWAN devices their
   * recent frames and joins, gateways and radio baselines, as plain JSON
   * (device-snapshot.ts). A collector group hands it on with a partition.
   * Windows keyed by a source address belong to no device and stay here.
   */
  exportDevices (filter: (deviceId: string) => boolean, options: { changedOnly?: boolean } = {}): DeviceSnapshot {
    const now = this.#clock.now()
    let candidates: Iterable<string> = this.#devices.keys()
    if (options.changedOnly) {
      // Only what changed since the last such export (and is picked): a collector of a group saves it with each batch.
      const picked = new Set<string>()
      for (const deviceId of this.#changed ?? []) if (filter(deviceId)) picked.add(deviceId)
      for (const deviceId of picked) this.#changed!.delete(deviceId)
      filter = (deviceId) => picked.has(deviceId)
      candidates = picked
    }
    const devices: DeviceRecord[] = []
    for (const deviceId of candidates) {
      const state = this.#devices.get(deviceId)
      if (!state || !filter(deviceId)) continue
      devices.push({
        deviceId, kind: state.kind, site: state.site,
        previous: state.previous ? { ...state.previous, readings: { ...state.previous.readings } } : null,
        firstSeenMs: state.firstSeenMs, lastSeenMs: state.lastSeenMs, lastHeardMs: state.lastHeardMs, messages: state.messages,
        // A run shorter than the collector's replay window learns its lag only from messages at live pace: that, rather than none.
        lagMs: state.lagMs ?? state.liveLagMs ?? null, intervalMs: state.intervalMs ?? null, firstIntervals: state.firstIntervals ? [...state.firstIntervals] : null,
        recent: state.recent.filter((t) => now - t <= rateWindowMs(state)), seen: state.seen.map((m) => ({ ...m })),
      })
    }
    const windows: WindowRecord[] = []
    for (const [windowKey, window] of this.#windows) {
      const { policy, key } = splitWindowKey(windowKey)
      if (window.expiresAtMs < now || !isDeviceKey(key) || !filter(key)) continue
      windows.push({ policy, key, times: [...window.times], claims: [...window.claims], claimsNotKept: window.claimsNotKept, expiresAtMs: window.expiresAtMs })
    }
    return { version: DEVICE_SNAPSHOT_VERSION, takenAtMs: now, devices, windows, lorawan: this.#lorawan.exportDevices(filter) }
  }

  /**
   * From now on, remembers which devices' learned state changes (a message,
   * a security event, a LoRaWAN frame), for `exportDevices(filter, {
   * changedOnly: true })`. A collector of a group turns it on; alone, a
   * collector has no use for it and keeps no such set.
   */
  trackChanges (): void {
    this.#changed ??= new Set()
  }

  /**
   * Takes in what exportDevices gave (here or on another collector): from
   * now on these devices are judged against their history — an older seq
   * is a replay, an older firmware a downgrade, the learned interval and
   * rate baseline hold. A snapshot of another version, or one that does
   * not validate, is ignored whole and the reason returned (the caller
   * logs it); the devices are then learned afresh. Where this engine has
   * heard a device more recently than the snapshot, its own state stays.
   *
   * Silence. Between the snapshot and now the device may have spoken to
   * another collector, or into a stream nobody read while its partition
   * changed hands; this engine could not have heard it. That gap is the
   * same as a collector whose input is not yet connected, and is treated
   * the same way (setCatchingUp: silence excludes the time PlaceGuard was
   * deaf), but for these devices alone: their silence counts from the
   * import, as the whole fleet's counts from a reconnect. So a move opens
   * no silence alert, and a device still silent after it is judged again
   * once the usual `missedIntervals` (and MIN_SILENCE_MS) have passed —
   * the whole fleet is not held for one partition's move, and no timed
   * grace has to guess how long a move takes.
   */
  importDevices (value: unknown, options: { reconnectAllowanceMs?: number } = {}): DeviceImport {
    const read = readDeviceSnapshot(value)
    if ('ignored' in read) return { devices: 0, windows: 0, ignored: read.ignored }
    const now = this.#clock.now()
    const deafNow = this.#deafNow()
    // Another collector's clock may run a little ahead: nothing learned lies in this engine's future.
    const upToNow = (t: number): number => Math.min(t, now)
    let devices = 0
    for (const record of read.snapshot.devices) {
      const local = this.#devices.get(record.deviceId)
      if (local && local.lastHeardMs > record.lastHeardMs) continue
      const lastHeardMs = upToNow(record.lastHeardMs)
      const state: DeviceState = {
        kind: record.kind, site: record.site, previous: record.previous ?? undefined,
        lastSeenMs: upToNow(record.lastSeenMs), lastHeardMs, firstSeenMs: upToNow(record.firstSeenMs), messages: record.messages,
        lagMs: record.lagMs ?? undefined,
        // …plus, after a restart, the time devices may need to find a broker that went down with it (setCatchingUp).
        deafAtLastSeenMs: deafNow - (now - lastHeardMs) - (options.reconnectAllowanceMs ?? 0),
        intervalMs: record.intervalMs ?? undefined, firstIntervals: record.firstIntervals ?? undefined,
        recent: record.recent.map(upToNow).filter((t) => now - t <= rateWindowFor(record.intervalMs)),
        seen: record.seen,
      }
      this.#devices.delete(record.deviceId)
      if (this.#devices.size >= MAX_DEVICES) this.#devices.delete(this.#devices.keys().next().value!)
      this.#devices.set(record.deviceId, state)
      devices++
    }
    let windows = 0
    for (const record of read.snapshot.windows) {
      const key = `${record.policy}\u0000${record.key}`
      if (record.expiresAtMs < now || (this.#windows.get(key)?.expiresAtMs ?? -Infinity) >= record.expiresAtMs) continue
      this.#keepWindow(key, { times: record.times, claims: record.claims, claimsNotKept: record.claimsNotKept, expiresAtMs: record.expiresAtMs }, now)
      windows++
    }
    const lorawan = this.#lorawan.importDevices(read.snapshot.lorawan ?? [])
    return { devices, windows, ...(lorawan > 0 ? { lorawan } : {}) }
  }

  /**
   * Forgets the devices `filter` picks, and their windows: their messages
   * now go to another collector, which judges them (a partition handed
   * over). Kept here, they would fall silent and be alerted as such.
   * Returns how many devices were forgotten.
   */
  forgetDevices (filter: (deviceId: string) => boolean): number {
    let forgotten = 0
    for (const deviceId of [...this.#devices.keys()]) {
      if (!filter(deviceId)) continue
      this.#devices.delete(deviceId)
      forgotten++
    }
    if (this.#changed) for (const deviceId of [...this.#changed]) if (filter(deviceId)) this.#changed.delete(deviceId)
    for (const windowKey of [...this.#windows.keys()]) {
      const { key } = splitWindowKey(windowKey)
      if (isDeviceKey(key) && filter(key)) this.#windows.delete(windowKey)
    }
    // A LoRaWAN device's telemetry state and its radio state go together; either counts it once.
    const lorawan = this.#lorawan.forgetDevices(filter)
    return Math.max(forgotten, lorawan)
  }

  /**
   * The collector says whether it is behind: stalled, disconnected, or
   * replaying a backlog. While it is, no device is judged silent (the
   * silence would be PlaceGuard's), and a message's time is taken from
   * the device's own clock, corrected by its learned lag, so a replayed
   * backlog is spread back over the time it was sent instead of counting
   * as a burst. Once caught up, silence is counted from that moment, or
   * `reconnectAllowanceMs` later for the devices not heard since (time
   * they may need to find a lost broker again).
   */
  setCatchingUp (catchingUp: boolean, reconnectAllowanceMs = 0): void {
    if (this.#catchingUp === catchingUp) return
    if (catchingUp) this.#behindSinceMs = this.#clock.now()
    else this.#deafTotalMs += this.#clock.now() - this.#behindSinceMs + reconnectAllowanceMs
    this.#catchingUp = catchingUp
  }

  /** The running total of time behind, the current stretch included. */
  #deafNow (): number {
    return this.#deafTotalMs + (this.#catchingUp ? this.#clock.now() - this.#behindSinceMs : 0)
  }

  /**
   * The collector's session was just resumed (or it just stalled): until
   * `untilMs`, what arrives may include the broker's stored backlog, which
   * aedes delivers alongside live messages, so message times come from
   * the device's clock (bounded) even once live traffic looks on time.
   */
  expectReplayUntil (untilMs: number): void {
    this.#replayUntilMs = Math.max(this.#replayUntilMs, untilMs)
  }

  get catchingUp (): boolean {
    return this.#catchingUp
  }

  onTelemetry (observation: TelemetryObservation): Verdict {
    this.#changed?.add(observation.deviceId)
    const state = this.#state(observation)
    // After a collector crash or a lost PUBACK the broker sends QoS 1
    // messages again: the same message twice is one message (no replay, no
    // second count in the rate), or detection would alert on its own recovery.
    if (isRedelivery(observation, state.seen)) {
      this.#redeliveries++
      // …but something of the device's came through now. Its client sends again what was not
      // acknowledged when the broker cut it off: for as long as that takes, the device is not silent.
      this.#heardAt(state, observation.receivedAtMs)
      return { findings: [], clears: [] }
    }
    // A stored message that aedes delivers after a newer live one belongs
    // before it in time: judged against no previous message rather than a
    // later one, and it does not become the previous message.
    // A seq already seen is not backlog (its exact copy was set aside above
    // as a redelivery): an old seq with other content is a replay even now.
    const learnedLag = state.liveLagMs ?? state.lagMs
    // A clock that moved is the device's new time, in order: its lag moves with it (clockStep).
    const stepMs = clockStep(state, observation, learnedLag)
    if (stepMs !== undefined) {
      if (state.lagMs !== undefined) state.lagMs += stepMs
      state.liveLagMs = learnedLag === undefined ? observation.receivedAtMs - observation.ts : learnedLag + stepMs
    }
    const outOfOrder = this.#replaying() && stepMs === undefined && state.previous !== undefined && observation.ts < state.previous.ts &&
      !state.seen.some((m) => m.seq === observation.seq)
    const previous = outOfOrder ? undefined : state.previous
    const findings: Finding[] = []
    const clears: Clear[] = []
    const run = <I extends PolicyId>(id: I, rule: (policy: PolicyOf<I & Policy['id']>) => Finding | undefined, clearsWhenQuiet: boolean): void => {
      const policy = this.#applicable(id, observation.deviceId, observation.kind, observation.site)
      if (!policy) return
      const finding = rule(policy as PolicyOf<I & Policy['id']>)
      if (finding) findings.push(finding)
      else if (clearsWhenQuiet) clears.push({ policy: id, deviceId: observation.deviceId, reason: `${id} no longer holds` })
    }
    // A device that speaks again is no longer silent.
    if (this.#applicable('device-silent', observation.deviceId, observation.kind, observation.site)) {
      clears.push({ policy: 'device-silent', deviceId: observation.deviceId, reason: 'the device reported again' })
    }
    run('firmware-outdated', (p) => firmwareOutdatedRule(p, observation), true)
    run('firmware-vulnerable', (p) => firmwareVulnerableRule(p, observation, { index: this.#advisories, product: this.#products.get(observation.deviceId) }), true)
    run('firmware-downgrade', (p) => firmwareDowngradeRule(p, observation, previous), false)
    run('value-implausible', (p) => valueImplausibleRule(p, observation, previous), false)
    run('clock-skew', (p) => clockSkewRule(p, observation), true)
    // A LoRaWAN device's seq is its frame counter: lorawan-fcnt-reset judges it knowing joins, 16-bit wraps,
    // retransmissions and the network server's times; replay on the bare seq would call a wrap across lost frames a replay.
    if (!this.#lorawan.knows(observation.deviceId)) run('replay', (p) => replayRule(p, observation, previous, learnedLag), false)
    const backlogMs = observation.receivedAtMs - observation.ts - (state.liveLagMs ?? state.lagMs ?? 0)
    this.#learn(state, observation, outOfOrder)
    return { ...this.#quiet(findings.map((f) => ({ ...f, site: observation.site, kind: observation.kind })), clears), backlogMs }
  }

  /**
   * One event of a network server's integration (issue 16): the LoRaWAN
   * policies — unknown DevEUI, frame counter going back, join floods,
   * gateway and signal shifts. The uplink's readings come separately as
   * telemetry (onTelemetry), so silence, bursts, firmware and readings are
   * judged for these devices as for any other. Times are the network
   * server's receive times, so a backlog delivered late is judged when it
   * happened.
   */
  onLorawan (observation: LorawanObservation): Verdict {
    if (observation.device) this.#changed?.add(observation.device.deviceId)
    const { findings, clears } = this.#lorawan.observe(observation, (id, deviceId, kind, site) => this.#applicable(id, deviceId, kind, site), this.#clock.now())
    const device = observation.device
    return this.#quiet(findings.map((f) => ({ ...f, site: device?.site ?? null, kind: device?.kind ?? null })), clears)
  }

  onSecurityEvent (event: SecurityEvent): Verdict {
    if (event.type === 'rate-limited') return this.#onRateLimited(event)
    const device = event.deviceId ? this.#devices.get(event.deviceId) : undefined
    const heard = event.type === 'payload-invalid' && device ? this.#heard(event.deviceId!, device, 'a message that did not decode') : []
    const match = policyForEvent(event)
    if (!match) return { findings: [], clears: heard }
    const policy = this.#applicable(match.policy, match.key, device?.kind ?? event.kind, device?.site ?? event.site)
    if (!policy) return { findings: [], clears: heard }
    const now = this.#clock.now()
    const windowKey = `${match.policy}\u0000${match.key}`
    if (isDeviceKey(match.key)) this.#changed?.add(match.key)
    const previous = this.#windows.get(windowKey)
    const { state, finding } = eventWindowRule(policy as WindowPolicy, match.key, previous ?? emptyWindow(), event, now)
    this.#keepWindow(windowKey, { ...state, expiresAtMs: now + (policy as WindowPolicy).params.window }, now)
    if (!finding) return { findings: [], clears: heard }
    return this.#quiet([{ ...finding, site: device?.site ?? event.site ?? null, kind: device?.kind ?? event.kind ?? null }], heard)
  }

  /**
   * Heard from a known device otherwise than by a reading: a message that
   * did not decode (payload-invalid), or the broker throttling it. Neither
   * teaches anything about its pace or values, but the device is not
   * silent: it is connected and sending, and what is wrong with it is
   * payload-invalid's or rate-burst's to say. Counting it as silence would
   * raise a second alert, of another meaning, for the same fault. `why` is
   * the reason an open device-silent alert is resolved with.
   */
  #heard (deviceId: string, state: DeviceState, why: string): Clear[] {
    this.#heardAt(state, this.#clock.now())
    this.#changed?.add(deviceId)
    return this.#applicable('device-silent', deviceId, state.kind, state.site)
      ? [{ policy: 'device-silent', deviceId, reason: `the device reported again (${why})` }]
      : []
  }

  /** cert-expiry over the whole inventory, online or not. */
  onCertificates (certificates: Array<CertificateFacts & { kind: string | null, site: string | null }>): Verdict {
    const findings: Finding[] = []
    const clears: Clear[] = []
    const now = this.#clock.now()
    for (const certificate of certificates) {
      const policy = this.#applicable('cert-expiry', certificate.deviceId, certificate.kind ?? undefined, certificate.site ?? undefined)
      if (!policy) continue
      const finding = certExpiryRule(policy as PolicyOf<'cert-expiry'>, certificate, now)
      if (finding) findings.push({ ...finding, site: certificate.site, kind: certificate.kind })
      else clears.push({ policy: 'cert-expiry', deviceId: certificate.deviceId, reason: 'the certificate is no longer near expiry' })
    }
    return this.#quiet(findings, clears)
  }

  /**
   * The time-driven rules: silence and bursts. Call every few seconds.
   * O(n log n) in the fleet: each kind/site group's median and MAD are
   * computed once, then every device is compared against them.
   */
  tick (): Verdict {
    const now = this.#clock.now()
    const findings: Finding[] = []
    // Rates now and learned baselines, by kind and site (a device's peers) and by kind alone (the crowd of a small site).
    const rates = new Map<string, number[]>()
    const baselines = new Map<string, number[]>()
    const add = (groups: Map<string, number[]>, key: string, value: number): void => {
      const group = groups.get(key)
      if (group) group.push(value)
      else groups.set(key, [value])
    }
    const current = new Map<DeviceState, number>()
    for (const state of this.#devices.values()) {
      const windowMs = rateWindowMs(state)
      state.recent = state.recent.filter((t) => now - t <= windowMs)
      const perMinute = state.recent.length * 60_000 / windowMs
      current.set(state, perMinute)
      add(rates, `${state.kind}/${state.site}`, perMinute)
      add(rates, state.kind, perMinute)
      const baseline = baselinePerMinute(state)
      if (baseline !== undefined) {
        add(baselines, `${state.kind}/${state.site}`, baseline)
        add(baselines, state.kind, baseline)
      }
    }
    const peers = new Map<string, PeerStats>()
    for (const [key, group] of rates) peers.set(key, peerStats(group))
    const learned = new Map<string, PeerStats>()
    for (const [key, group] of baselines) learned.set(key, peerStats(group))
    this.#groupSizes = new Map([...rates].map(([key, group]) => [key, group.length]))
    for (const [deviceId, state] of this.#devices) {
      const burst = this.#applicable('rate-burst', deviceId, state.kind, state.site)
      const silent = this.#catchingUp ? undefined : this.#applicable('device-silent', deviceId, state.kind, state.site)
      if (silent) {
        const finding = deviceSilentRule(silent as PolicyOf<'device-silent'>, {
          deviceId, kind: state.kind, lastSeenMs: state.lastHeardMs, learnedIntervalMs: silenceIntervalMs(state, learned, (burst as PolicyOf<'rate-burst'> | undefined)?.params.factor),
          messages: state.messages, deafMs: this.#deafNow() - state.deafAtLastSeenMs, minSilenceMs: MIN_SILENCE_MS,
        }, now)
        if (finding) findings.push({ ...finding, site: state.site, kind: state.kind })
      }
      if (burst) {
        const finding = rateBurstRule(burst as PolicyOf<'rate-burst'>, {
          deviceId, kind: state.kind, currentPerMinute: current.get(state)!, peakPerMinute: peakPerMinute(state, now), baselinePerMinute: baselinePerMinute(state), messages: state.messages, ageMs: now - state.firstSeenMs,
        }, peers.get(`${state.kind}/${state.site}`)!, {
          peerBaselines: learned.get(`${state.kind}/${state.site}`), kindRates: peers.get(state.kind), kindBaselines: learned.get(state.kind),
        })
        if (finding) findings.push({ ...finding, site: state.site, kind: state.kind })
      }
    }
    return this.#quiet(findings, [])
  }

  /** Stores a window as the most recent; sweeps expired ones now and then; evicts the oldest at the bound. */
  #keepWindow (key: string, state: WindowState & { expiresAtMs: number }, now: number): void {
    this.#windows.delete(key) // re-insert: Map order is recency
    if (now - this.#windowsSweptAtMs >= WINDOW_SWEEP_MS) {
      this.#windowsSweptAtMs = now
      for (const [k, w] of this.#windows) if (w.expiresAtMs < now) this.#windows.delete(k)
    }
    if (this.#windows.size >= MAX_WINDOWS) {
      this.#windows.delete(this.#windows.keys().next().value!)
      this.#windowsEvicted++
    }
    this.#windows.set(key, state)
  }

  /**
   * The broker throttled a device for publishing beyond its budget: before
   * the device has a baseline, that is the evidence of a burst (a flood in
   * its first minute); once warm, the rate rules judge it.
   */
  #onRateLimited (event: SecurityEvent): Verdict {
    if (!event.deviceId) return { findings: [], clears: [] }
    const device = this.#devices.get(event.deviceId)
    // The broker holds a throttled device's messages (up to its maxThrottleMs) before they reach the
    // collector: it is sending faster than allowed, not silent, whatever has been delivered so far.
    const heard = device ? this.#heard(event.deviceId, device, 'the device is sending over its budget') : []
    const kind = device?.kind ?? event.kind
    const site = device?.site ?? event.site
    const policy = this.#applicable('rate-burst', event.deviceId, kind, site)
    if (!policy) return { findings: [], clears: heard }
    const warm = device !== undefined && device.intervalMs !== undefined && isWarm(policy as PolicyOf<'rate-burst'>, device.messages, this.#clock.now() - device.firstSeenMs)
    const finding = brokerThrottleRule(policy as PolicyOf<'rate-burst'>, event, warm, device?.messages ?? 0)
    return finding ? this.#quiet([{ ...finding, site: site ?? null, kind: kind ?? null }], heard) : { findings: [], clears: heard }
  }

  /** Findings inside a maintenance window or suppression are set aside; clears always pass. */
  #quiet (findings: Finding[], clears: Clear[]): Verdict {
    if (this.#quietWindows.length === 0 || findings.length === 0) return { findings, clears }
    const now = this.#clock.now()
    const kept: Finding[] = []
    const quieted: Quieted[] = []
    for (const finding of findings) {
      const window = quietWindowFor(this.#quietWindows, finding, now)
      if (window) quieted.push({ finding, window })
      else kept.push(finding)
    }
    return { findings: kept, clears, quieted }
  }

  #applicable (id: PolicyId, deviceId: string, kind: string | undefined, site: string | undefined): Policy | undefined {
    const policy = this.#policies.get(id)
    if (!policy) return undefined
    const scope = policy.scope
    if (scope?.devices && !scope.devices.includes(deviceId)) return undefined
    if (scope?.kinds && (kind === undefined || !(scope.kinds as string[]).includes(kind))) return undefined
    if (scope?.sites && (site === undefined || !scope.sites.includes(site))) return undefined
    return policy
  }

  #state (observation: TelemetryObservation): DeviceState {
    let state = this.#devices.get(observation.deviceId)
    if (state) {
      this.#devices.delete(observation.deviceId) // re-insert: Map order is recency
    } else {
      state = { kind: observation.kind, site: observation.site, previous: undefined, lastSeenMs: 0, lastHeardMs: 0, firstSeenMs: 0, messages: 0, lagMs: undefined, deafAtLastSeenMs: 0, intervalMs: undefined, firstIntervals: [], recent: [], seen: [] }
      if (this.#devices.size >= MAX_DEVICES) this.#devices.delete(this.#devices.keys().next().value!)
    }
    this.#devices.set(observation.deviceId, state)
    return state
  }

  /**
   * When the message was sent, on the broker's clock as near as can be
   * told. Normally its receive time. While PlaceGuard is catching up, the
   * device's own `ts` corrected by its learned lag — bounded below by its
   * previous message and a maximum backlog, and above by the receive time,
   * so a device's clock can only move its messages back into a backlog
   * PlaceGuard knows it has, never forward or out of order.
   */
  #arrival (state: DeviceState, observation: TelemetryObservation): number {
    const received = observation.receivedAtMs
    if (!this.#replaying()) return received
    const sent = observation.ts + (state.lagMs ?? 0)
    return Math.min(received, Math.max(sent, received - MAX_BACKLOG_MS))
  }

  /** Behind, or just after a resume or a stall: a message's time is its device's (bounded). */
  #replaying (): boolean {
    return this.#catchingUp || this.#clock.now() < this.#replayUntilMs
  }

  #learn (state: DeviceState, observation: TelemetryObservation, outOfOrder: boolean): void {
    const replaying = this.#replaying()
    const ownBacklog = replaying ? undefined : ownBacklogTime(state, observation)
    const now = ownBacklog ?? this.#arrival(state, observation)
    // Read before lastHeardMs moves on: the pace is against the previous message.
    const livePace = replaying && atLivePace(state, observation)
    // Heard now, whatever its place in time: silence is counted from here.
    this.#heardAt(state, observation.receivedAtMs)
    // The device's usual lag (its clock's offset, and the way here) is what a
    // backlog is measured against, so it is not learned from a backlog. But
    // learned only while caught up, a fleet whose clocks run slow (two devices
    // of a small site, a tenth of a large one) looked late from the first
    // start for ever: late, so behind; behind, so never learned. A message
    // that arrives at the pace it was sent is no backlog being read, whatever
    // its offset: lateness is measured against a lag learned from those too
    // (liveLagMs). The lag that places a replayed message in time (lagMs,
    // #arrival) stays as it was when caught up: moving it during a replay
    // stretches and squeezes the device's intervals into false bursts.
    // Nor from the device's own backlog (ownBacklogTime): its lateness is the device's, not its clock's.
    const lag = observation.receivedAtMs - observation.ts
    if (!replaying && ownBacklog === undefined) {
      state.lagMs = state.lagMs === undefined ? lag : state.lagMs + EWMA_WEIGHT * (lag - state.lagMs)
      state.liveLagMs = state.lagMs
    } else if (livePace) {
      const from = state.liveLagMs ?? state.lagMs
      state.liveLagMs = from === undefined ? lag : from + EWMA_WEIGHT * (lag - from)
    }
    if (outOfOrder || now < state.lastSeenMs) {
      // Part of a backlog that arrives out of order: it counts towards the rate at its own time, and nothing else.
      state.messages++
      state.recent.push(now)
      if (state.recent.length > RECENT_CAP) state.recent.shift()
      this.#remember(state, observation)
      return
    }
    // The time since the previous message is one interval only if no message
    // of the device lies between them. A backlog that aedes interleaves with
    // live messages, or frames lost on the way (seq is a frame counter,
    // docs/product.md), put a gap of many intervals between two messages read in
    // order; learned as one interval it would lengthen the baseline several
    // times over (the fast weight below lets long intervals in) and make the
    // device's ordinary rate look like a burst. Spread over the seqs it
    // spans, it is the device's own cadence; a seq that did not move forward,
    // or jumped past any plausible loss, says nothing about the cadence.
    const seqGap = state.previous === undefined ? 0 : observation.seq - state.previous.seq
    settle(state, now)
    if (state.messages > 0 && seqGap >= 1 && seqGap <= MAX_SEQ_GAP) {
      const interval = (now - state.lastSeenMs) / seqGap
      // An interval far shorter than usual is what a burst looks like: learn
      // it only slowly, or the baseline would follow the burst it should
      // expose. "Far" is half, not the policy's factor: a burst the broker
      // throttles to its budget arrives evenly spaced, at a fifth of a 1 s interval.
      const weight = state.intervalMs !== undefined && interval < state.intervalMs / 2 ? 1 - Math.exp(-(now - state.lastSeenMs) / SLOW_ADAPT_MS) : EWMA_WEIGHT
      if (state.firstIntervals) {
        // A first interval that spans a reconnect or a leftover message would
        // seed a baseline many times too long, which the slow weight above
        // would then keep: until warm-up is over, the median of what was seen.
        state.firstIntervals.push(interval)
        state.intervalMs = median(state.firstIntervals)
        if (state.firstIntervals.length >= WARMUP_INTERVALS) state.firstIntervals = undefined
      } else {
        state.intervalMs = state.intervalMs! + weight * (interval - state.intervalMs!)
      }
    }
    if (state.messages === 0) state.firstSeenMs = now
    state.lastSeenMs = now
    state.messages++
    state.recent.push(now)
    if (state.recent.length > RECENT_CAP) state.recent.shift()
    state.previous = { seq: observation.seq, ts: observation.ts, fw: observation.fw, readings: observation.readings }
    this.#remember(state, observation)
  }

  /** The device was heard at `atMs` (a receive time): its silence is counted from there. */
  #heardAt (state: DeviceState, atMs: number): void {
    state.lastHeardMs = Math.max(state.lastHeardMs, atMs)
    state.deafAtLastSeenMs = this.#deafNow()
  }

  /** Keeps the message's fingerprint, so a redelivery of it is recognised (bounded as `seen` says). */
  #remember (state: DeviceState, observation: TelemetryObservation): void {
    state.seen.push(fingerprintOf(observation))
    const now = observation.receivedAtMs
    while (state.seen.length > FINGERPRINTS_KEPT && (state.seen.length > FINGERPRINTS_MAX || now - state.seen[0]!.firstSeenMs > RESEND_WINDOW_MS)) state.seen.shift()
  }
}

/** A window's key is `<policy>\0<device id or address:…>` (onSecurityEvent). */
function splitWindowKey (windowKey: string): { policy: PolicyId, key: string } {
  const at = windowKey.indexOf('\u0000')
  return { policy: windowKey.slice(0, at) as PolicyId, key: windowKey.slice(at + 1) }
}

/** Windows keyed by a source address (event-window.ts addressKey) are no device's. */
function isDeviceKey (key: string): boolean {
  return !key.startsWith('address:')
}

function median (values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]!
}
