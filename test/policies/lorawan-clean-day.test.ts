/**
 * The LoRaWAN policies against an ordinary day of radio life: they must
 * stay quiet through jitter and fades, a gateway down for an hour (at a
 * three-gateway site and at a one-gateway site), a 16-bit counter
 * wrapping, frames lost, and a legitimate rejoin — on several seeds, so a
 * quiet day is not one lucky draw.
 */
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { loadPolicyDirectory, PolicyEngine } from '../../policies/index.ts'
import { feed, radioDay, radioFleet, seeded, testClock } from '../helpers/lorawan-radio.ts'

const shipped = loadPolicyDirectory(join(import.meta.dirname, '..', '..', 'policies')).map((l) => l.policy)
const DAY = 86_400_000
const START = Date.parse('2026-12-01T00:00:00Z')

describe('the LoRaWAN policies on a clean fleet', () => {
  it.each([1, 2, 3, 4, 5])('find nothing in two days of uplinks (seed %i)', (seed) => {
    const random = seeded(seed)
    const devices = radioFleet(random)
    const wrapping = devices.find((d) => d.deviceId === 'riverside-2')!
    wrapping.counterBits = 16
    wrapping.fCnt = 0xffff - 60
    const clock = testClock(START)
    const engine = new PolicyEngine(shipped, clock)
    const outages = [
      { gatewayId: 'gw-r2', fromMs: START + 10 * 3_600_000, untilMs: START + 11 * 3_600_000 },
      { gatewayId: 'gw-e1', fromMs: START + 15 * 3_600_000, untilMs: START + 16 * 3_600_000 },
      { gatewayId: 'gw-h1', fromMs: START + DAY + 3 * 3_600_000, untilMs: START + DAY + 4 * 3_600_000 },
    ]
    const day1 = radioDay(devices, random, { startMs: START, outages, rejoins: { 'hillside-1': START + 14 * 3_600_000 } })
    const day2 = radioDay(devices, random, { startMs: START + DAY, outages, rejoins: { 'estate-2': START + DAY + 9 * 3_600_000 } })
    expect(day1.length).toBeGreaterThan(1_000)
    // The 16-bit counter did wrap during the first day.
    const counts = day1.filter((e) => e.device?.deviceId === 'riverside-2' && e.message.event === 'up').map((e) => e.message.fCnt!)
    expect(counts.some((c, i) => i > 0 && c < counts[i - 1]!)).toBe(true)
    expect(feed(engine, clock, [...day1, ...day2])).toEqual([])
  })

  it('find nothing in a day of 600 devices, a third of them behind a single gateway', () => {
    const random = seeded(42)
    const devices = radioFleet(random, { riverside: 200, hillside: 200, estate: 200 })
    const clock = testClock(START)
    const engine = new PolicyEngine(shipped, clock)
    const outages = [{ gatewayId: 'gw-h2', fromMs: START + 8 * 3_600_000, untilMs: START + 9 * 3_600_000 }]
    expect(feed(engine, clock, radioDay(devices, random, { startMs: START, outages }))).toEqual([])
  })
})
