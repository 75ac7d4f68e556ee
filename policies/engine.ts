/**
 * The policy engine: feeds telemetry, security events and certificates to
 * the rules, with the per-device memory they need, and answers findings
 * (conditions that hold) and clears (conditions that stopped holding).
 * Pure apart from the injected clock: no sockets, timers or files here.
 */
import type { SecurityEvent } from '../broker/index.ts'
import { type Clock, systemClock } from '../shared/clock.ts'
import type { PolicyId } from './catalogue.ts'
import type { Finding, PreviousTelemetry, TelemetryObservation } from './finding.ts'
import { type QuietWindow, quietWindowFor } from './quiet-windows.ts'
import type { Policy, PolicyOf } from './schema.ts'
import { certExpiryRule, type CertificateFacts } from './rules/cert-expiry.ts'
import { clockSkewRule } from './rules/clock-skew.ts'
import { deviceSilentRule } from './rules/device-silent.ts'
import { emptyWindow, eventWindowRule, policyForEvent, type WindowPolicy, type WindowState } from './rules/event-window.ts'
import { firmwareDowngradeRule } from './rules/firmware-downgrade.ts'
import { firmwareOutdatedRule } from './rules/firmware-outdated.ts'
import { firmwareVulnerableRule } from './rules/firmware-vulnerable.ts'
import { rateBurstRule } from './rules/rate-burst.ts'
import { FINGERPRINTS_KEPT, fingerprintOf, isRedelivery, type MessageFingerprint, replayRule } from './rules/replay.ts'
import { valueImplausibleRule } from './rules/value-implausible.ts'

export interface Clear { policy: PolicyId, deviceId: string, reason: string }
/** A finding that a maintenance window or suppression kept from becoming an alert. */
export interface Quieted { finding: Finding, window: QuietWindow }
export interface Verdict { findings: Finding[], clears: Clear[], quieted?: Quieted[] }

interface DeviceState {
  kind: TelemetryObservation['kind']
  site: string
  previous: PreviousTelemetry | undefined
  lastSeenMs: number
  messages: number
  /** EWMA of the interval between messages, ms; learned only while not bursting. */
  intervalMs: number | undefined
  /** Arrival times in the rate window (bounded). */
  recent: number[]
  /** The last few messages, to recognise a QoS 1 redelivery (bounded by FINGERPRINTS_KEPT). */
  seen: MessageFingerprint[]
}

const EWMA_WEIGHT = 0.1
const SLOW_EWMA_WEIGHT = 0.005
const RECENT_CAP = 5_000
/**
 * The "now" of a rate: short enough that a 30 s burst stands out against a
 * per-minute baseline, long enough to hold a few messages of a device on a
 * 2–10 s interval.
 */
const RATE_WINDOW_MS = 10_000
const PER_MINUTE = 60_000 / RATE_WINDOW_MS
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

export class PolicyEngine {
  #policies = new Map<PolicyId, Policy>()
  #quietWindows: readonly QuietWindow[] = []
  readonly #clock: Clock
  readonly #devices = new Map<string, DeviceState>()
  #redeliveries = 0
  readonly #windows = new Map<string, WindowState & { expiresAtMs: number }>()
  #windowsSweptAtMs = 0
  #windowsEvicted = 0

  constructor (policies: Policy[], clock: Clock = systemClock, quietWindows: readonly QuietWindow[] = []) {
    this.#clock = clock
    this.setPolicies(policies, quietWindows)
  }

  /** Swaps the policy set and quiet windows (a reload); learned device state is kept. */
  setPolicies (policies: Policy[], quietWindows: readonly QuietWindow[] = []): void {
    this.#policies = new Map(policies.filter((p) => p.enabled).map((p) => [p.id, p]))
    this.#quietWindows = quietWindows
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
    const recent = state.recent.filter((t) => now - t <= RATE_WINDOW_MS).length
    return { currentPerMinute: recent * PER_MINUTE, baselinePerMinute: state.intervalMs ? 60_000 / state.intervalMs : null, messages: state.messages }
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

  onTelemetry (observation: TelemetryObservation): Verdict {
    const state = this.#state(observation)
    // After a collector crash or a lost PUBACK the broker sends QoS 1
    // messages again: the same message twice is one message (no replay, no
    // second count in the rate), or detection would alert on its own recovery.
    if (isRedelivery(observation, state.seen)) {
      this.#redeliveries++
      return { findings: [], clears: [] }
    }
    const previous = state.previous
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
    run('firmware-vulnerable', (p) => firmwareVulnerableRule(p, observation), true)
    run('firmware-downgrade', (p) => firmwareDowngradeRule(p, observation, previous), false)
    run('value-implausible', (p) => valueImplausibleRule(p, observation, previous), false)
    run('clock-skew', (p) => clockSkewRule(p, observation), true)
    run('replay', (p) => replayRule(p, observation, previous), false)
    this.#learn(state, observation)
    return this.#quiet(findings.map((f) => ({ ...f, site: observation.site, kind: observation.kind })), clears)
  }

  onSecurityEvent (event: SecurityEvent): Verdict {
    const match = policyForEvent(event)
    if (!match) return { findings: [], clears: [] }
    const device = event.deviceId ? this.#devices.get(event.deviceId) : undefined
    const policy = this.#applicable(match.policy, match.key, device?.kind ?? event.kind, device?.site ?? event.site)
    if (!policy) return { findings: [], clears: [] }
    const now = this.#clock.now()
    const windowKey = `${match.policy}\u0000${match.key}`
    const previous = this.#windows.get(windowKey)
    const { state, finding } = eventWindowRule(policy as WindowPolicy, match.key, previous ?? emptyWindow(), event, now)
    this.#keepWindow(windowKey, { ...state, expiresAtMs: now + (policy as WindowPolicy).params.window }, now)
    if (!finding) return { findings: [], clears: [] }
    return this.#quiet([{ ...finding, site: device?.site ?? event.site ?? null, kind: device?.kind ?? event.kind ?? null }], [])
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

  /** The time-driven rules: silence and bursts. Call every few seconds. */
  tick (): Verdict {
    const now = this.#clock.now()
    const findings: Finding[] = []
    const peers = new Map<string, number[]>()
    for (const state of this.#devices.values()) {
      state.recent = state.recent.filter((t) => now - t <= RATE_WINDOW_MS)
      const key = `${state.kind}/${state.site}`
      peers.set(key, [...(peers.get(key) ?? []), state.recent.length * PER_MINUTE])
    }
    for (const [deviceId, state] of this.#devices) {
      const silent = this.#applicable('device-silent', deviceId, state.kind, state.site)
      if (silent) {
        const finding = deviceSilentRule(silent as PolicyOf<'device-silent'>, { deviceId, kind: state.kind, lastSeenMs: state.lastSeenMs, learnedIntervalMs: state.intervalMs, messages: state.messages }, now)
        if (finding) findings.push({ ...finding, site: state.site, kind: state.kind })
      }
      const burst = this.#applicable('rate-burst', deviceId, state.kind, state.site)
      if (burst && state.intervalMs) {
        const finding = rateBurstRule(burst as PolicyOf<'rate-burst'>, {
          deviceId, currentPerMinute: state.recent.length * PER_MINUTE, baselinePerMinute: 60_000 / state.intervalMs, messages: state.messages,
        }, peers.get(`${state.kind}/${state.site}`) ?? [])
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
      state = { kind: observation.kind, site: observation.site, previous: undefined, lastSeenMs: 0, messages: 0, intervalMs: undefined, recent: [], seen: [] }
      if (this.#devices.size >= MAX_DEVICES) this.#devices.delete(this.#devices.keys().next().value!)
    }
    this.#devices.set(observation.deviceId, state)
    return state
  }

  #learn (state: DeviceState, observation: TelemetryObservation): void {
    const now = observation.receivedAtMs
    if (state.messages > 0) {
      const interval = now - state.lastSeenMs
      const factor = (this.#policies.get('rate-burst') as PolicyOf<'rate-burst'> | undefined)?.params.factor ?? 5
      // An interval far shorter than usual is what a burst looks like: learn
      // it only slowly, or the baseline would follow the burst it should expose.
      const weight = state.intervalMs !== undefined && interval < state.intervalMs / factor ? SLOW_EWMA_WEIGHT : EWMA_WEIGHT
      state.intervalMs = state.intervalMs === undefined ? interval : state.intervalMs + weight * (interval - state.intervalMs)
    }
    state.lastSeenMs = now
    state.messages++
    state.recent.push(now)
    if (state.recent.length > RECENT_CAP) state.recent.shift()
    state.previous = { seq: observation.seq, ts: observation.ts, fw: observation.fw, readings: observation.readings }
    state.seen.push(fingerprintOf(observation))
    if (state.seen.length > FINGERPRINTS_KEPT) state.seen.shift()
  }
}
