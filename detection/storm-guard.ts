/**
 * The storm guard: when one policy opens alerts for a large share of one
 * kind at one site within a window — a broken gateway, a mass firmware
 * push, a network cut — the SOC gets one correlated `alert-storm` alert
 * listing the devices, not a page per device (alert fatigue is itself a
 * denial of service on the SOC, STRIDE D). The per-device alerts still
 * exist in the alert book and the API; only their delivery is folded.
 */
import type { Alert } from '../shared/alert-contract.ts'
import type { Clock } from '../shared/clock.ts'

export interface StormGuardOptions {
  clock: Clock
  /** Opens within this window count together; a storm ends after a window without one. */
  windowMs?: number
  /** A storm needs at least this many devices… */
  minDevices?: number
  /** …and at least this share of the devices of the kind at the site. */
  share?: number
}

export interface Storm {
  key: string
  policy: string
  kind: string
  site: string
  /** The devices in the storm, in order (bounded; `deviceCount` is the true count). */
  devices: string[]
  deviceCount: number
  groupSize: number
  startedAtMs: number
}

/** Devices listed on one storm; the count goes on. */
const MAX_LISTED = 500
/** Open storms and groups watched at once; the oldest is forgotten first. */
const MAX_KEYS = 10_000

export class StormGuard {
  readonly #options: Required<StormGuardOptions>
  /** Per policy/kind/site: recent opens (bounded by the window) and the storm, if one is on. */
  readonly #groups = new Map<string, { opens: Array<{ deviceId: string, atMs: number }>, storm: Storm | undefined }>()

  constructor (options: StormGuardOptions) {
    this.#options = { windowMs: 60_000, minDevices: 5, share: 0.25, ...options }
  }

  get windowMs (): number {
    return this.#options.windowMs
  }

  /**
   * A batch of newly opened alerts (one tick's, or one message's). Answers
   * which of them a storm takes over, and the storms that began or grew.
   */
  observe (opened: Alert[], groupSize: (kind: string, site: string) => number): { correlated: Map<string, Storm>, storms: Storm[] } {
    const now = this.#options.clock.now()
    const correlated = new Map<string, Storm>()
    const touched = new Set<Storm>()
    const byKey = new Map<string, Alert[]>()
    for (const alert of opened) {
      if (!alert.kind || !alert.site) continue // an unverified identity has no group to storm in
      const key = `${alert.policy}:${alert.site}:${alert.kind}`
      byKey.set(key, [...(byKey.get(key) ?? []), alert])
    }
    for (const [key, alerts] of byKey) {
      const { policy, kind, site } = alerts[0]! as { policy: string, kind: string, site: string }
      let group = this.#groups.get(key)
      if (group) this.#groups.delete(key) // re-insert: Map order is recency
      group ??= { opens: [], storm: undefined }
      if (this.#groups.size >= MAX_KEYS) this.#groups.delete(this.#groups.keys().next().value!)
      this.#groups.set(key, group)
      group.opens = group.opens.filter((o) => now - o.atMs <= this.#options.windowMs)
      if (group.storm && group.opens.length === 0) group.storm = undefined // a quiet window ended it
      group.opens.push(...alerts.map((a) => ({ deviceId: a.deviceId, atMs: now })))
      // Only the window's worth of opens is needed to decide; the storm keeps its own count.
      if (group.opens.length > MAX_LISTED) group.opens = group.opens.slice(-MAX_LISTED)
      const size = Math.max(groupSize(kind, site), group.opens.length)
      if (!group.storm && group.opens.length >= Math.max(this.#options.minDevices, Math.ceil(this.#options.share * size))) {
        group.storm = { key, policy, kind, site, devices: group.opens.map((o) => o.deviceId), deviceCount: group.opens.length, groupSize: size, startedAtMs: now }
        touched.add(group.storm)
      } else if (group.storm) {
        const storm = group.storm
        for (const alert of alerts) if (storm.devices.length < MAX_LISTED) storm.devices.push(alert.deviceId)
        storm.deviceCount += alerts.length
        storm.groupSize = Math.max(storm.groupSize, size)
        touched.add(storm)
      }
      if (group.storm) for (const alert of alerts) correlated.set(alert.id, group.storm)
    }
    return { correlated, storms: [...touched] }
  }
}
