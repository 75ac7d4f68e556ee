import { describe, expect, it } from 'vitest'
import { parseTelemetry } from '../../shared/telemetry.ts'

const good = { ts: 1_790_000_000_000, seq: 7, fw: '3.2.1', level_cm: 84.2, battery_v: 3.51 }
const parse = (value: unknown, kind: 'flood' | 'energy' | 'housing' = 'flood') =>
  parseTelemetry(kind, Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)))

describe('parseTelemetry', () => {
  it('accepts a valid payload of each kind', () => {
    expect(parse(good)).toEqual({ ok: true, telemetry: good })
    expect(parse({ ts: 1, seq: 0, fw: '5.4.0', power_kw: 3.2, voltage_v: 231, energy_kwh: 1200.5 }, 'energy').ok).toBe(true)
    expect(parse({ ts: 1, seq: 0, fw: '1.8.3-rc.1', temp_c: 19.5, humidity_pct: 55, co2_ppm: 640 }, 'housing').ok).toBe(true)
  })

  it.each([
    ['not JSON', '{"ts":1,', /^not JSON: /],
    ['a missing reading', { ...good, battery_v: undefined }, /^battery_v: /],
    ['a string where a number belongs', { ...good, seq: '7' }, /^seq: /],
    ['a negative seq', { ...good, seq: -1 }, /^seq: /],
    ['a firmware that is not semver', { ...good, fw: 'v3' }, /^fw: must be a semantic version/],
    ['an unknown field (a reading of another kind)', { ...good, temp_c: 20 }, /temp_c|Unrecognized/],
    ['an array', [good], /^\(payload\): /],
    ['an oversized payload', { ...good, pad: 'x'.repeat(5000) }, /exceeds 4096/],
  ])('rejects %s with a reason naming the field', (_what, value, reason) => {
    const result = parse(value)
    expect(result.ok).toBe(false)
    if (!result.ok) expect(result.reason).toMatch(reason)
  })

  it('checks readings against the kind of the topic, not the payload', () => {
    expect(parse(good, 'energy').ok).toBe(false)
  })
})
