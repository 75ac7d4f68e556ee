import { Point } from '@influxdata/influxdb-client'
import { describe, expect, it } from 'vitest'
import { timestampNs, toLineProtocol } from '../../collector/stored-point.ts'
import type { StoredPoint } from '../../shared/stored-point.ts'

/**
 * The line as the client library's Point writes it, with the collector's own
 * rules around it (line breaks spelled out, backslashes in tag values
 * doubled, `seq` and `gateways` as integers): what toLineProtocol wrote
 * before it built lines itself, and must still write, byte for byte.
 */
function throughClient (point: StoredPoint): string {
  const noBreaks = (value: string): string => value.replaceAll('\r', '\\r').replaceAll('\n', '\\n')
  const line = new Point(point.measurement).timestamp(timestampNs(point))
  for (const [name, value] of Object.entries(point.tags)) line.tag(name, noBreaks(value).replaceAll('\\', '\\\\'))
  for (const [name, value] of Object.entries(point.fields)) {
    if (typeof value === 'string') line.stringField(name, noBreaks(value))
    else if (typeof value === 'boolean') line.booleanField(name, value)
    else if (name === 'seq' || name === 'gateways') line.intField(name, value)
    else line.floatField(name, value)
  }
  const text = line.toLineProtocol({ convertTime: (time: unknown) => String(time) } as never)
  if (text === undefined) throw new TypeError(`point in "${point.measurement}" has no measurement or no fields`)
  return text
}

/** Deterministic: a failure names its seed. */
function random (seed: number): () => number {
  let state = seed
  return () => {
    state = (state * 1103515245 + 12345) % 2 ** 31
    return state / 2 ** 31
  }
}

const AWKWARD = ['a', 'b', 'Z', '_', ',', ' ', '=', '"', '\\', '\n', '\r', '\t', 'é', '€', '0', '1', '']

function text (next: () => number, maxLength: number): string {
  let out = ''
  const length = Math.floor(next() * (maxLength + 1))
  for (let i = 0; i < length; i++) out += AWKWARD[Math.floor(next() * AWKWARD.length)]!
  return out
}

function value (next: () => number): string | number | boolean {
  const pick = next()
  if (pick < 0.3) return text(next, 6)
  if (pick < 0.4) return next() < 0.5
  if (pick < 0.7) return Math.round(next() * 1e6) / 100 - 5000
  return Math.floor(next() * 1e9)
}

function randomPoint (next: () => number): StoredPoint {
  const tags: Record<string, string> = {}
  const fields: Record<string, string | number | boolean> = {}
  for (let i = Math.floor(next() * 4); i > 0; i--) tags[text(next, 4)] = text(next, 8)
  for (let i = 1 + Math.floor(next() * 5); i > 0; i--) fields[next() < 0.2 ? 'seq' : text(next, 5)] = value(next)
  return { measurement: text(next, 6) || 'm', tags, fields, timestampMs: Math.floor(next() * 2e12), ordinalNs: next() < 0.5 ? undefined : Math.floor(next() * 1e6) }
}

describe('toLineProtocol', () => {
  it('writes a reading as the store expects it', () => {
    const point: StoredPoint = { measurement: 'housing', tags: { site: 'p1', device: 'housing-1' }, fields: { seq: 7, fw: '1.2.0', temp_c: 21, humidity_pct: 40.5 }, timestampMs: 1_700_000_000_000 }
    expect(toLineProtocol(point)).toBe('housing,device=housing-1,site=p1 fw="1.2.0",humidity_pct=40.5,seq=7i,temp_c=21 1700000000000000000')
  })

  it('writes every point exactly as the client library did, escapes and order included', () => {
    for (let seed = 1; seed <= 3000; seed++) {
      const point = randomPoint(random(seed))
      let expected: string | Error
      try {
        expected = throughClient(point)
      } catch (error) {
        expected = error as Error
      }
      if (expected instanceof Error) expect(() => toLineProtocol(point), `seed ${seed}`).toThrow(expected.message)
      else expect(toLineProtocol(point), `seed ${seed}`).toBe(expected)
    }
  })

  it('refuses, as the client does, what the store could never take', () => {
    const base: StoredPoint = { measurement: 'flood', tags: { device: 'f1' }, fields: { level_cm: 1 }, timestampMs: 1 }
    for (const point of [
      { ...base, fields: { level_cm: Number.NaN } },
      { ...base, fields: { level_cm: Number.POSITIVE_INFINITY } },
      { ...base, fields: { seq: Number.NaN } },
      { ...base, fields: {} },
      { ...base, fields: { '': 1 } },
      { ...base, measurement: '' },
    ]) {
      expect(() => throughClient(point)).toThrow()
      expect(() => toLineProtocol(point)).toThrow()
    }
    expect(() => toLineProtocol({ ...base, timestampMs: 1.5 })).toThrow(/not whole milliseconds/)
    expect(() => toLineProtocol({ ...base, ordinalNs: 1_000_000 })).toThrow(/not 0–999,999 ns/)
  })
})
