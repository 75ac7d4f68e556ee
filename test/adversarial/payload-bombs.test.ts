/**
 * JSON bombs and prototype-pollution keys in telemetry (issue 11, STRIDE T
 * and D), through a real broker and a real collector in this process (so a
 * polluted Object.prototype would show here): each bad payload becomes a
 * `payload-invalid` security event, nothing is polluted, and a good
 * device's telemetry is still stored, every message of it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type CollectorService, createCollectorService } from '../../app/collector-service.ts'
import { loadConfig } from '../../app/config.ts'
import { createLogger } from '../../shared/logger.ts'
import { connectClient, useFleetWithBroker, waitFor } from '../helpers/broker.ts'

const setup = useFleetWithBroker({ publishRatePerSec: 0 })
let service: CollectorService

const topic = (id: string): string => `places/block-a/housing/${id}/telemetry`
const reading = (seq: number) => ({ ts: 1_790_000_000_000 + seq, seq, fw: '1.4.2', temp_c: 19.5, humidity_pct: 50, co2_ppm: 600 })
const nested = (depth: number): string => '['.repeat(depth) + ']'.repeat(depth)

/** Payloads an attacker with a valid certificate can send; each must be refused as telemetry. */
const BOMBS: Array<[string, string]> = [
  ['__proto__ key', JSON.stringify(reading(1)).replace(/}$/, ',"__proto__":{"polluted":"yes","isAdmin":true}}')],
  ['__proto__ as the only key', '{"__proto__":{"polluted":"yes"}}'],
  ['constructor.prototype', JSON.stringify({ ...reading(2), constructor: { prototype: { polluted: 'yes' } } })],
  ['nested __proto__', '{"a":{"__proto__":{"polluted":"yes"}},"ts":1}'],
  ['__proto__ in an array', '[{"__proto__":{"polluted":"yes"}}]'],
  ['a reading named __proto__', JSON.stringify(reading(3)).replace('"temp_c"', '"__proto__"')],
  ['deep nesting within the size limit', nested(2_000)],
  ['deep nesting over the size limit', nested(50_000)],
  ['unclosed nesting', '['.repeat(4_000)],
  ['a number that overflows to Infinity', JSON.stringify(reading(4)).replace('"temp_c":19.5', '"temp_c":1e400')],
  ['a 4 KB string', JSON.stringify({ ...reading(5), fw: 'x'.repeat(4_000) })],
  ['thousands of keys', `{${Array.from({ length: 600 }, (_, i) => `"k${i}":${i}`).join(',')}}`],
  ['a duplicate key', JSON.stringify(reading(6)).replace('"seq":6', '"seq":6,"seq":-1')],
  ['a lone surrogate', JSON.stringify(reading(7)).replace('"1.4.2"', '"1.4.2-\\ud800"')],
]

beforeAll(async () => {
  await setup.fleet.pki.issueMany(['good-1', 'bomb-1'].map((deviceId) => ({ deviceId, kind: 'housing' as const, site: 'block-a' })))
  service = createCollectorService(loadConfig({ env: {}, flags: { dataDir: setup.fleet.dataDir } }), setup.broker.url, createLogger({ level: 'silent' }))
  await service.start()
}, 60_000)

afterAll(async () => {
  await service?.stop()
})

describe('JSON bombs and prototype pollution in telemetry', () => {
  it('raises payload-invalid for each bomb, pollutes nothing, and still stores every good reading', async () => {
    const prototypeBefore = Object.getOwnPropertyNames(Object.prototype).sort()
    const bomber = await connectClient(setup.broker.url, setup.fleet, setup.fleet.device('bomb-1'), 'bomb-1')
    const good = await connectClient(setup.broker.url, setup.fleet, setup.fleet.device('good-1'), 'good-1')
    const sentGood: number[] = []
    for (const [index, [, payload]] of BOMBS.entries()) {
      await bomber.publishAsync(topic('bomb-1'), payload, { qos: 1 })
      // Interleaved: the good device's messages travel with the bombs, not after them.
      await good.publishAsync(topic('good-1'), JSON.stringify(reading(index)), { qos: 1 })
      sentGood.push(index)
    }
    bomber.end(true)
    good.end(true)

    const store = service.embedded!
    const invalid = () => store.recent({ deviceId: 'bomb-1', measurement: 'security_event', limit: 1_000 }).filter((p) => p.tags.type === 'payload-invalid')
    await waitFor(() => invalid().length >= BOMBS.length, 15_000, `${BOMBS.length} payload-invalid events`).catch(() => {})
    await waitFor(() => store.recent({ deviceId: 'good-1', measurement: 'housing', limit: 1_000 }).length >= sentGood.length, 15_000, 'the good readings').catch(() => {})

    const reasons = invalid().map((p) => String(p.fields.reason))
    expect(reasons, `payload-invalid reasons: ${reasons.join(' | ')}`).toHaveLength(BOMBS.length)
    expect(store.recent({ deviceId: 'bomb-1', measurement: 'housing' }), 'no bomb stored as telemetry').toEqual([])
    const stored = store.recent({ deviceId: 'good-1', measurement: 'housing', limit: 1_000 }).map((p) => Number(p.fields.seq)).sort((a, b) => a - b)
    expect(stored).toEqual(sentGood)
    // Nothing polluted: Object.prototype is as it was, and a fresh object has no inherited extras (STRIDE T/E).
    expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(prototypeBefore)
    const fresh = {} as Record<string, unknown>
    expect([fresh.polluted, fresh.isAdmin]).toEqual([undefined, undefined])
    // The device-supplied key never became a field name of the stored event.
    for (const point of invalid()) expect(Object.keys(point.fields).sort()).toEqual(expect.arrayContaining(['count', 'reason']))
    for (const point of invalid()) expect(Object.keys(point.fields).filter((key) => !['count', 'reason', 'code', 'remote_address', 'topic', 'serial'].includes(key))).toEqual([])
  }, 60_000)
})
