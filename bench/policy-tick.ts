/**
 * npx node bench/policy-tick.ts [--devices 1000,10000,50000] — the policy
 * engine's tick (silence and rate-burst over the whole fleet), timed alone:
 * its cost per tick must grow no faster than n log n, the engine ticks
 * every 5 s on the collector's one thread.
 */
import { parseArgs } from 'node:util'
import { loadPolicyDirectory, PolicyEngine } from '../policies/index.ts'
import { SHIPPED_POLICIES_DIR } from '../detection/detection.ts'
import { printTable } from './lib/report.ts'

const { values } = parseArgs({ options: { devices: { type: 'string', default: '1000,10000,50000' }, sites: { type: 'string', default: '4' } } })
const policies = loadPolicyDirectory(SHIPPED_POLICIES_DIR).map(({ policy }) => policy)
const kinds = ['flood', 'energy', 'housing'] as const
const rows = []
for (const devices of values.devices.split(',').map(Number)) {
  let now = 1_000_000
  const engine = new PolicyEngine(policies, { now: () => now })
  // 30 messages per device, 1 s apart: warm devices with a full rate window.
  for (let i = 0; i < 30; i++) {
    now += 1_000
    for (let d = 0; d < devices; d++) {
      engine.onTelemetry({ deviceId: `d-${d}`, kind: kinds[d % 3]!, site: `s-${d % Number(values.sites)}`, ts: now, seq: i, fw: '3.2.1', readings: {}, receivedAtMs: now })
    }
  }
  const runs: number[] = []
  for (let i = 0; i < 5; i++) {
    const started = performance.now()
    engine.tick()
    runs.push(performance.now() - started)
  }
  runs.sort((a, b) => a - b)
  rows.push({ devices, groups: 3 * Number(values.sites), tickMedianMs: Math.round(runs[2]! * 10) / 10, tickMaxMs: Math.round(runs[4]! * 10) / 10 })
}
printTable(rows)
