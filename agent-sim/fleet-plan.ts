import { DEVICE_KINDS, type DeviceKind } from '../shared/ids.ts'
import { invalidInput } from '../shared/errors.ts'
import { Random } from './random.ts'
import { FIRMWARE_SPREAD } from './telemetry-models.ts'

export interface PlannedDevice {
  deviceId: string
  kind: DeviceKind
  site: string
  /** Firmware the device runs when the run starts. */
  firmware: string
  /** Seed of this device's own generator. */
  seed: number
}

export type KindMix = Record<DeviceKind, number>

export const DEFAULT_MIX: KindMix = { flood: 40, energy: 30, housing: 30 }
export const DEFAULT_SITES = ['riverside', 'northgate', 'harbour', 'old-town']

/** "flood=40,energy=30,housing=30" → weights. */
export function parseMix (text: string): KindMix {
  const mix: KindMix = { flood: 0, energy: 0, housing: 0 }
  for (const part of text.split(',')) {
    const [kind, weight] = part.split('=')
    if (!kind || !(DEVICE_KINDS as readonly string[]).includes(kind) || !weight || !/^\d+$/.test(weight)) {
      throw invalidInput('mix', `"${part}" is not kind=weight`, 'e.g. flood=40,energy=30,housing=30')
    }
    mix[kind as DeviceKind] = Number(weight)
  }
  if (Object.values(mix).every((weight) => weight === 0)) throw invalidInput('mix', 'every weight is 0')
  return mix
}

/**
 * The fleet: device i gets a kind by the mix (largest remainder, so the
 * counts are exact), a site round-robin, and firmware from the field spread.
 * Ids are `<kind>-<n>`, stable across runs so identities are reused.
 */
export function planFleet (count: number, mix: KindMix, sites: string[], seed: number): PlannedDevice[] {
  const total = DEVICE_KINDS.reduce((sum, kind) => sum + mix[kind], 0)
  const quotas = DEVICE_KINDS.map((kind) => ({ kind, exact: (count * mix[kind]) / total }))
  const counts = new Map(quotas.map((q) => [q.kind, Math.floor(q.exact)]))
  let remaining = count - [...counts.values()].reduce((a, b) => a + b, 0)
  for (const q of [...quotas].sort((a, b) => (b.exact % 1) - (a.exact % 1))) {
    if (remaining-- <= 0) break
    counts.set(q.kind, counts.get(q.kind)! + 1)
  }
  const rng = new Random(seed)
  const devices: PlannedDevice[] = []
  for (const kind of DEVICE_KINDS) {
    for (let n = 0; n < counts.get(kind)!; n++) {
      const deviceId = `${kind}-${String(n).padStart(5, '0')}`
      const own = rng.fork(deviceId)
      devices.push({ deviceId, kind, site: sites[n % sites.length]!, firmware: own.weighted(FIRMWARE_SPREAD[kind]), seed: Math.floor(own.next() * 2 ** 32) })
    }
  }
  return devices
}

/** Devices of a scenario's small sites, ids `<kind>-<site>-<n>`, planned like the rest of the fleet. */
export function planSmallSites (sites: Array<{ site: string, kind: DeviceKind, devices: number }>, seed: number): PlannedDevice[] {
  const rng = new Random(seed ^ 0x51735)
  return sites.flatMap(({ site, kind, devices }) => Array.from({ length: devices }, (_, n) => {
    const deviceId = `${kind}-${site}-${n}`
    const own = rng.fork(deviceId)
    return { deviceId, kind, site, firmware: own.weighted(FIRMWARE_SPREAD[kind]), seed: Math.floor(own.next() * 2 ** 32) }
  }))
}
