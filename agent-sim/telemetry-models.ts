/**
 * Readings that look like the real thing, per kind (docs/product.md payloads).
 * Each model is a small state machine driven by the wall-clock time and a
 * seeded generator, so a run with `--seed` repeats.
 */
import type { DeviceKind } from '../shared/ids.ts'
import type { Random } from './random.ts'

export type Readings = Record<string, number>

export interface ReadingModel {
  next: (atMs: number) => Readings
}

const HOUR = 3_600_000
const TIDE_PERIOD_MS = 12.42 * HOUR // semi-diurnal M2 tide

function hourOfDay (atMs: number): number {
  return (atMs % (24 * HOUR)) / HOUR
}

function round (value: number, digits: number): number {
  const factor = 10 ** digits
  return Math.round(value * factor) / factor
}

/** River/estuary level: a tide, rain events that raise and slowly drain it, sensor noise; a draining battery. */
function floodModel (rng: Random): ReadingModel {
  const baseCm = rng.between(40, 160)
  const tideCm = rng.between(5, 60)
  const phase = rng.next() * TIDE_PERIOD_MS
  let rainCm = 0
  let batteryV = rng.between(3.45, 3.65)
  let lastMs: number | undefined
  return {
    next (atMs) {
      const dtH = lastMs === undefined ? 0 : Math.max(0, atMs - lastMs) / HOUR
      lastMs = atMs
      if (rng.next() < 0.002) rainCm += rng.between(5, 40) // a shower upstream
      rainCm *= Math.exp(-dtH / 6) // drains over hours
      batteryV = Math.max(3.0, batteryV - dtH * 0.0004)
      const tide = tideCm * Math.sin((2 * Math.PI * (atMs + phase)) / TIDE_PERIOD_MS)
      return {
        level_cm: round(Math.max(0, baseCm + tide + rainCm + rng.gaussian() * 0.8), 1),
        battery_v: round(batteryV + rng.gaussian() * 0.005, 3),
      }
    },
  }
}

/**
 * Where every simulated meter's reading starts from: it has been counting
 * since then at twice its peak load, more than it counts while running. So
 * a meter read again by a later run of the simulator (the same device, the
 * same seed) never reads less than the last run left it at: a real meter's
 * register outlives its device's reboots, and PlaceGuard remembers the last
 * reading across its own restarts.
 */
const METER_EPOCH_MS = Date.UTC(2026, 0, 1)
const METER_EPOCH_LOAD = 2

/** A building's supply: a daily load shape with morning and evening peaks, mains voltage, a meter that only goes up. */
function energyModel (rng: Random): ReadingModel {
  const scaleKw = rng.between(2, 40)
  const baseKwh = rng.between(1_000, 90_000)
  let energyKwh = 0
  let lastMs: number | undefined
  return {
    next (atMs) {
      const hour = hourOfDay(atMs)
      const shape = 0.35 + 0.45 * Math.exp(-((hour - 8) ** 2) / 4) + 0.7 * Math.exp(-((hour - 18.5) ** 2) / 5)
      const powerKw = Math.max(0, scaleKw * shape * (1 + rng.gaussian() * 0.05))
      if (lastMs !== undefined) energyKwh += powerKw * Math.max(0, atMs - lastMs) / HOUR
      else energyKwh = baseKwh + scaleKw * METER_EPOCH_LOAD * Math.max(0, atMs - METER_EPOCH_MS) / HOUR
      lastMs = atMs
      return {
        power_kw: round(powerKw, 3),
        voltage_v: round(230 + rng.gaussian() * 2.5, 1),
        energy_kwh: round(energyKwh, 3),
      }
    },
  }
}

/** A flat: temperature with a daily cycle, humidity and CO2 that rise while people are home. */
function housingModel (rng: Random): ReadingModel {
  const setPointC = rng.between(17.5, 22)
  const dampness = rng.between(0, 15)
  let co2 = rng.between(450, 700)
  return {
    next (atMs) {
      const hour = hourOfDay(atMs)
      const occupied = hour < 8 || hour > 17 ? 1 : 0.3
      co2 += (420 + 900 * occupied - co2) * 0.05 + rng.gaussian() * 10
      return {
        temp_c: round(setPointC + 1.5 * Math.sin(((hour - 9) / 24) * 2 * Math.PI) + rng.gaussian() * 0.1, 2),
        humidity_pct: round(Math.min(99, 45 + dampness + 8 * occupied + rng.gaussian() * 1.5), 1),
        co2_ppm: Math.round(Math.max(400, co2)),
      }
    },
  }
}

export function createReadingModel (kind: DeviceKind, rng: Random): ReadingModel {
  switch (kind) {
    case 'flood': return floodModel(rng)
    case 'energy': return energyModel(rng)
    case 'housing': return housingModel(rng)
  }
}

/** Firmware in the field: most devices current, a tail on older releases (semver). */
export const FIRMWARE_SPREAD: Record<DeviceKind, ReadonlyArray<readonly [string, number]>> = {
  flood: [['3.2.1', 55], ['3.2.0', 25], ['3.1.4', 15], ['3.0.9', 5]],
  energy: [['5.4.0', 50], ['5.3.2', 30], ['5.3.1', 15], ['5.2.7', 5]],
  housing: [['1.8.3', 60], ['1.8.2', 25], ['1.7.9', 15]],
}
