import { describe, expect, it } from 'vitest'
import { DEFAULT_MIX, parseMix, planFleet } from '../../agent-sim/index.ts'
import { Random } from '../../agent-sim/random.ts'
import { createReadingModel } from '../../agent-sim/telemetry-models.ts'
import { PlaceGuardError } from '../../shared/errors.ts'

describe('planFleet', () => {
  it('splits the fleet by the mix exactly and spreads sites round-robin', () => {
    const fleet = planFleet(101, DEFAULT_MIX, ['a', 'b'], 1)
    const count = (kind: string) => fleet.filter((d) => d.kind === kind).length
    // 40.4 / 30.3 / 30.3: the one left over goes to the largest remainder.
    expect([count('flood'), count('energy'), count('housing')]).toEqual([41, 30, 30])
    expect(new Set(fleet.map((d) => d.deviceId)).size).toBe(101)
    expect(fleet.find((d) => d.deviceId === 'flood-00001')?.site).toBe('b')
  })

  it('is the same fleet for the same seed, another for another seed', () => {
    expect(planFleet(50, DEFAULT_MIX, ['a'], 42)).toEqual(planFleet(50, DEFAULT_MIX, ['a'], 42))
    expect(planFleet(50, DEFAULT_MIX, ['a'], 42).map((d) => d.seed)).not.toEqual(planFleet(50, DEFAULT_MIX, ['a'], 43).map((d) => d.seed))
  })

  it('parses --mix and names the flag when it is wrong', () => {
    expect(parseMix('flood=1,energy=0,housing=3')).toEqual({ flood: 1, energy: 0, housing: 3 })
    expect(() => parseMix('lava=3')).toThrow(PlaceGuardError)
    expect(() => parseMix('flood=x')).toThrow(/^mix: /)
  })
})

describe('telemetry models', () => {
  const hour = 3_600_000
  it('repeat exactly for a seed', () => {
    const a = createReadingModel('flood', new Random(9))
    const b = createReadingModel('flood', new Random(9))
    for (let t = 0; t < 10; t++) expect(a.next(t * 60_000)).toEqual(b.next(t * 60_000))
  })

  it('keep an energy meter that never decreases and readings in physical ranges', () => {
    const energy = createReadingModel('energy', new Random(3))
    const flood = createReadingModel('flood', new Random(3))
    const housing = createReadingModel('housing', new Random(3))
    let meter = -Infinity
    for (let t = 0; t < 48 * 6; t++) {
      const at = t * hour / 6
      const e = energy.next(at)
      expect(e.energy_kwh!).toBeGreaterThanOrEqual(meter)
      meter = e.energy_kwh!
      expect(e.voltage_v!).toBeGreaterThan(215)
      expect(e.voltage_v!).toBeLessThan(245)
      const f = flood.next(at)
      expect(f.level_cm!).toBeGreaterThanOrEqual(0)
      expect(f.level_cm!).toBeLessThan(400)
      expect(f.battery_v!).toBeGreaterThan(2.9)
      const h = housing.next(at)
      expect(h.temp_c!).toBeGreaterThan(10)
      expect(h.temp_c!).toBeLessThan(30)
      expect(h.co2_ppm!).toBeGreaterThanOrEqual(400)
      expect(h.humidity_pct!).toBeLessThanOrEqual(99)
    }
  })
})
