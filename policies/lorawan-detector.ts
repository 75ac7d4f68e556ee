/**
 * The LoRaWAN detections' memory (issue 16): per registered device its
 * frames, joins, gateways and radio baselines; per integration its repeat
 * joins; per gateway which devices it hears and at which sites; and which
 * unknown (integration, DevEUI) pairs were already reported. Every map is
 * bounded, the least recently touched forgotten first: DevEUIs and gateway
 * ids are the network server's to multiply (STRIDE D). Pure apart from the
 * time it is handed; the engine drives it (engine.ts onLorawan).
 */
import type { LorawanObservation } from '../shared/lorawan.ts'
import type { PolicyId } from './catalogue.ts'
import type { Finding } from './finding.ts'
import { type Policy, type PolicyOf, policySchema } from './schema.ts'
import { emptyFrameCounter, type FrameCounterState, lorawanFcntResetRule } from './rules/lorawan-fcnt-reset.ts'
import { confirmGatewayShift, emptyGatewayShift, type GatewayContext, type GatewayShiftState, type GatewayShiftVerdict, hasSuspects, lorawanGatewayShiftRule } from './rules/lorawan-gateway-shift.ts'
import { DEVICE_JOINS_KEPT, type IntegrationJoins, insertTime, lorawanDeviceJoinFloodRule, lorawanIntegrationJoinFloodRule } from './rules/lorawan-join-flood.ts'
import { emptySignalShift, lorawanSignalShiftRule, type SignalShiftState } from './rules/lorawan-signal-shift.ts'
import { lorawanUnknownDeviceRule, unknownDeviceKey } from './rules/lorawan-unknown-device.ts'

/** What travels with a device in a snapshot (device-snapshot.ts), as plain JSON. */
export interface LorawanDeviceState {
  deviceId: string
  integrationId: string
  kind: string
  site: string
  /** When it was last heard (network server clock): the fresher copy wins an import. */
  lastHeardMs: number
  frames: FrameCounterState
  /** Join times, sorted (at most DEVICE_JOINS_KEPT). */
  joins: number[]
  gateways: GatewayShiftState
  signal: SignalShiftState
}

interface GatewayActivity {
  /** Its last HEARD_KEPT uplinks (device, time), sorted by time: was it up, hearing others, around an uplink? */
  heard: Array<[string, number]>
  /** Site → registered devices of that site that have learned the gateway. */
  sites: Map<string, Set<string>>
}

export interface LorawanVerdict { findings: Finding[], clears: Array<{ policy: PolicyId, deviceId: string, reason: string }> }

const MAX_DEVICES = 200_000
const MAX_GATEWAYS = 20_000
const MAX_UNKNOWN = 10_000
const MAX_INTEGRATIONS = 1_000
const HEARD_KEPT = 32
const MAX_SUSPECTS = 10_000
const SITES_PER_GATEWAY = 16
const DEVICES_PER_SITE = 32

/** The frame counter's history is kept with these when the policy is off or out of scope (its findings are then dropped). */
const DEFAULT_FCNT_RESET = policySchema.parse({ id: 'lorawan-fcnt-reset', severity: 'high' }) as PolicyOf<'lorawan-fcnt-reset'>

type PolicyFor = (id: PolicyId, deviceId: string, kind: string | undefined, site: string | undefined) => Policy | undefined

export class LorawanDetector {
  readonly #devices = new Map<string, LorawanDeviceState>()
  readonly #gateways = new Map<string, GatewayActivity>()
  /** Unknown (integration, DevEUI) key → when it was last reported (engine clock). */
  readonly #unknown = new Map<string, number>()
  readonly #integrations = new Map<string, IntegrationJoins>()
  /** Devices with suspect gateway-shift uplinks, settled as their usual gateways are heard again. */
  readonly #suspects = new Set<string>()
  /** The latest receive time seen (network server clock): how long a gateway has been silent. */
  #latestMs = 0

  get deviceCount (): number {
    return this.#devices.size
  }

  /** Whether the device is one behind a network server that this engine has heard of. */
  knows (deviceId: string): boolean {
    return this.#devices.has(deviceId)
  }

  observe (observation: LorawanObservation, policyFor: PolicyFor, nowMs: number): LorawanVerdict {
    const { message, device, integrationId } = observation
    const findings: Finding[] = []
    const clears: LorawanVerdict['clears'] = []
    const key = device?.deviceId ?? unknownDeviceKey(integrationId, message.devEui)
    if (message.event === 'join') this.#integrationJoin(observation, policyFor, findings)
    if (!device) {
      const policy = policyFor('lorawan-unknown-device', key, undefined, undefined) as PolicyOf<'lorawan-unknown-device'> | undefined
      const finding = policy && lorawanUnknownDeviceRule(policy, observation, this.#unknown.get(key), nowMs, () => this.#reportedRecently(integrationId, nowMs - policy.params.repeatAfter))
      if (finding) {
        touch(this.#unknown, key, nowMs, MAX_UNKNOWN)
        findings.push(finding)
      }
      if (message.event === 'up') this.#heard(message.gateways.map((g) => g.gatewayId), key, message.receivedAtMs, policyFor, findings)
      return { findings, clears }
    }
    const fresh = !this.#devices.has(device.deviceId)
    const state = this.#state(observation)
    // Registered to this integration now: an unknown-device alert for the pair no longer holds.
    const unknownKey = unknownDeviceKey(integrationId, message.devEui)
    if (fresh || this.#unknown.delete(unknownKey)) clears.push({ policy: 'lorawan-unknown-device', deviceId: unknownKey, reason: `DevEUI ${message.devEui} is registered to integration ${integrationId}` })
    const policy = <I extends PolicyId>(id: I) => policyFor(id, device.deviceId, device.kind, device.site) as PolicyOf<I & Policy['id']> | undefined

    // The frame history is kept whether or not the policy runs: it is also how a redelivery is recognised.
    const fcnt = policy('lorawan-fcnt-reset')
    const frames = lorawanFcntResetRule(fcnt ?? DEFAULT_FCNT_RESET, device.deviceId, state.frames, message)
    // The very event again (a QoS 1 redelivery, a stream read twice): one event, judged once.
    if (frames.duplicate) return { findings, clears }
    state.frames = frames.state
    if (fcnt && frames.finding) findings.push(frames.finding)
    if (fcnt && frames.clear) clears.push({ policy: 'lorawan-fcnt-reset', deviceId: device.deviceId, reason: frames.clear })
    state.lastHeardMs = Math.max(state.lastHeardMs, message.receivedAtMs)
    if (message.event === 'join') {
      const joins = policy('lorawan-join-flood')
      if (joins && !state.joins.includes(message.receivedAtMs)) {
        state.joins = insertTime(state.joins, message.receivedAtMs, DEVICE_JOINS_KEPT)
        const finding = lorawanDeviceJoinFloodRule(joins, device.deviceId, state.joins, message.receivedAtMs)
        if (finding) findings.push(finding)
      }
      return { findings, clears }
    }
    if (message.event !== 'up') return { findings, clears }

    this.#heard(message.gateways.map((g) => g.gatewayId), device.deviceId, message.receivedAtMs, policyFor, findings)
    const shift = policy('lorawan-gateway-shift')
    if (shift) {
      this.#shifted(state, lorawanGatewayShiftRule(shift, device.deviceId, device.site, state.gateways, message, this.#context(shift, state)), findings)
    }

    const signal = policy('lorawan-signal-shift')
    if (signal) {
      const verdict = lorawanSignalShiftRule(signal, device.deviceId, state.signal, message)
      state.signal = verdict.state
      if (verdict.finding) findings.push(verdict.finding)
      if (verdict.clear) clears.push({ policy: 'lorawan-signal-shift', deviceId: device.deviceId, reason: verdict.clear })
    }
    return { findings, clears }
  }

  /** The learned state of the devices `filter` picks (copies: JSON-safe). */
  exportDevices (filter: (deviceId: string) => boolean): LorawanDeviceState[] {
    return [...this.#devices.values()].filter((s) => filter(s.deviceId)).map((s) => structuredClone(s))
  }

  /**
   * Takes in devices another engine learned, unless this one heard them
   * more recently. Their learned gateways are recorded as used at their
   * site, so "a gateway of its own site" holds after a restart too.
   */
  importDevices (records: readonly LorawanDeviceState[]): number {
    let taken = 0
    for (const record of records) {
      const local = this.#devices.get(record.deviceId)
      if (local && local.lastHeardMs > record.lastHeardMs) continue
      touch(this.#devices, record.deviceId, structuredClone(record), MAX_DEVICES)
      for (const [g] of record.gateways.learned) this.#usedAt(g, record.site, record.deviceId)
      if (hasSuspects(record.gateways) && this.#suspects.size < MAX_SUSPECTS) this.#suspects.add(record.deviceId)
      taken++
    }
    return taken
  }

  forgetDevices (filter: (deviceId: string) => boolean): number {
    let forgotten = 0
    for (const deviceId of [...this.#devices.keys()]) {
      if (!filter(deviceId)) continue
      this.#devices.delete(deviceId)
      forgotten++
    }
    return forgotten
  }

  /** Unknown DevEUIs of an integration reported since `sinceMs`. */
  #reportedRecently (integrationId: string, sinceMs: number): number {
    const prefix = unknownDeviceKey(integrationId, '')
    let count = 0
    for (const [key, at] of this.#unknown) if (at >= sinceMs && key.startsWith(prefix)) count++
    return count
  }

  #state (observation: LorawanObservation): LorawanDeviceState {
    const device = observation.device!
    const state = this.#devices.get(device.deviceId) ?? {
      deviceId: device.deviceId, integrationId: observation.integrationId, kind: device.kind, site: device.site, lastHeardMs: observation.message.receivedAtMs,
      frames: emptyFrameCounter(), joins: [], gateways: emptyGatewayShift(), signal: emptySignalShift(),
    }
    // Re-registered elsewhere: what was learned still describes the radio; the integration and site follow the registry.
    state.integrationId = observation.integrationId
    state.kind = device.kind
    state.site = device.site
    touch(this.#devices, device.deviceId, state, MAX_DEVICES)
    return state
  }

  #integrationJoin (observation: LorawanObservation, policyFor: PolicyFor, findings: Finding[]): void {
    const key = `integration:${observation.integrationId}`
    const policy = policyFor('lorawan-join-flood', key, undefined, undefined) as PolicyOf<'lorawan-join-flood'> | undefined
    if (!policy) return
    const joins = this.#integrations.get(observation.integrationId) ?? { lastJoinByDevEui: new Map(), repeats: [] }
    touch(this.#integrations, observation.integrationId, joins, MAX_INTEGRATIONS)
    // A redelivered join (same DevEUI, same time) is not a repeat.
    if (joins.lastJoinByDevEui.get(observation.message.devEui) === observation.message.receivedAtMs) return
    const finding = lorawanIntegrationJoinFloodRule(policy, observation.integrationId, joins, observation.message.devEui, observation.message.receivedAtMs)
    if (finding) findings.push(finding)
  }

  /**
   * The gateways heard a device at `atMs`: they are up. Devices whose
   * suspect gateway-shift uplinks waited on one of these gateways are
   * settled now.
   */
  #heard (gatewayIds: string[], deviceId: string, atMs: number, policyFor: PolicyFor, findings: Finding[]): void {
    this.#latestMs = Math.max(this.#latestMs, atMs)
    const gateways = new Set(gatewayIds)
    for (const g of gateways) {
      const activity = this.#gateway(g)
      const at = activity.heard.findIndex(([, t]) => t > atMs)
      const index = at === -1 ? activity.heard.length : at
      activity.heard = [...activity.heard.slice(0, index), [deviceId, atMs] as [string, number], ...activity.heard.slice(index)].slice(-HEARD_KEPT)
    }
    for (const suspect of [...this.#suspects]) {
      const state = this.#devices.get(suspect)
      if (!state || !hasSuspects(state.gateways)) {
        this.#suspects.delete(suspect)
        continue
      }
      if (suspect === deviceId || !state.gateways.learned.some(([g]) => gateways.has(g))) continue
      const shift = policyFor('lorawan-gateway-shift', suspect, state.kind, state.site) as PolicyOf<'lorawan-gateway-shift'> | undefined
      if (shift) this.#shifted(state, confirmGatewayShift(shift, suspect, state.site, state.gateways, this.#context(shift, state)), findings)
    }
  }

  #shifted (state: LorawanDeviceState, verdict: GatewayShiftVerdict, findings: Finding[]): void {
    state.gateways = verdict.state
    for (const g of verdict.learnedNow) this.#usedAt(g, state.site, state.deviceId)
    if (verdict.finding) findings.push(verdict.finding)
    if (hasSuspects(state.gateways)) {
      this.#suspects.delete(state.deviceId)
      if (this.#suspects.size >= MAX_SUSPECTS) this.#suspects.delete(this.#suspects.values().next().value!)
      this.#suspects.add(state.deviceId)
    } else {
      this.#suspects.delete(state.deviceId)
    }
  }

  /** The fleet's gateways as one device's gateway-shift judgement sees them. */
  #context (policy: PolicyOf<'lorawan-gateway-shift'>, state: LorawanDeviceState): GatewayContext {
    const self = state.deviceId
    const window = policy.params.gatewayAliveWindow
    return {
      ofOwnSite: (g) => [...(this.#gateways.get(g)?.sites.get(state.site) ?? [])].some((d) => d !== self),
      sitesOf: (g) => [...(this.#gateways.get(g)?.sites ?? [])].filter(([, devices]) => [...devices].some((d) => d !== self)).map(([site]) => site),
      upAround: (g, atMs) => {
        const others = (this.#gateways.get(g)?.heard ?? []).filter(([d]) => d !== self)
        const before = others.findLast(([, t]) => t <= atMs)
        const after = others.find(([, t]) => t > atMs)
        if (!after) return this.#latestMs - atMs > window ? false : undefined
        return before !== undefined && after[1] - before[1] <= window
      },
    }
  }

  /** A registered device of `site` has learned the gateway. */
  #usedAt (gatewayId: string, site: string, deviceId: string): void {
    const activity = this.#gateway(gatewayId)
    let devices = activity.sites.get(site)
    if (!devices) {
      if (activity.sites.size >= SITES_PER_GATEWAY) return
      devices = new Set()
      activity.sites.set(site, devices)
    }
    if (devices.size < DEVICES_PER_SITE) devices.add(deviceId)
  }

  #gateway (gatewayId: string): GatewayActivity {
    const activity = this.#gateways.get(gatewayId) ?? { heard: [], sites: new Map() }
    touch(this.#gateways, gatewayId, activity, MAX_GATEWAYS)
    return activity
  }
}

/** Sets `key` as the most recently used entry of a bounded map, forgetting the least recently used at the bound. */
function touch<K, V> (map: Map<K, V>, key: K, value: V, max: number): void {
  map.delete(key)
  if (map.size >= max) map.delete(map.keys().next().value!)
  map.set(key, value)
}
