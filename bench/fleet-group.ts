/**
 * What sharing the fleet state costs a collector of a group: two fleet
 * states on one real PostgreSQL (the test helper's server), each receiving
 * half of N devices (default 10,000), all reporting every round. Per round
 * each saves its half (flush) and one reads what was saved since its
 * previous read (refresh); then a read with nothing saved since. Wall time
 * and this process's CPU per step, median of the rounds.
 *
 *   npx node bench/fleet-group.ts [--devices 10000] [--rounds 5]
 */
import { parseArgs } from 'node:util'
import { createDatabasePool, migrate } from '../db/index.ts'
import { FleetState, PgFleetStore } from '../fleet/index.ts'
import { createLogger } from '../shared/logger.ts'
import { startPostgres } from '../test/helpers/postgres.ts'
import { printTable, round, saveResults } from './lib/report.ts'

const { values } = parseArgs({ options: { devices: { type: 'string', default: '10000' }, rounds: { type: 'string', default: '5' } } })
const DEVICES = Number(values.devices)
const ROUNDS = Number(values.rounds)
const logger = createLogger({ level: 'silent' })
const server = await startPostgres()
const pools = [createDatabasePool({ url: server.url, applicationName: 'bench-a', logger }), createDatabasePool({ url: server.url, applicationName: 'bench-b', logger })]
await migrate(pools[0]!, { logger })
const [a, b] = await Promise.all(pools.map((pool) => FleetState.open({ asyncStore: new PgFleetStore({ pool }), logger })))
const kinds = { flood: { level_cm: 80, battery_v: 3.6 }, energy: { power_kw: 2, voltage_v: 231, energy_kwh: 1000 }, housing: { temp_c: 20, humidity_pct: 45, co2_ppm: 600 } }
const names = Object.keys(kinds) as Array<keyof typeof kinds>

const samples = new Map<string, Array<{ wallMs: number, cpuMs: number, rows: number }>>()
async function measure (step: string, work: () => Promise<unknown>): Promise<void> {
  const cpu = process.cpuUsage()
  const started = performance.now()
  const result = await work()
  const used = process.cpuUsage(cpu)
  const list = samples.get(step) ?? samples.set(step, []).get(step)!
  list.push({ wallMs: performance.now() - started, cpuMs: (used.user + used.system) / 1000, rows: typeof result === 'number' ? result : 0 })
}

for (let r = 0; r < ROUNDS; r++) {
  for (let i = 0; i < DEVICES; i++) {
    const kind = names[i % 3]!
    ;(i % 2 ? b : a)!.onTelemetry({ measurement: kind, tags: { device: `${kind}-${i}`, site: 'riverside' }, fields: { ...kinds[kind], seq: r, fw: '3.2.1' }, timestampMs: Date.now() })
  }
  await measure(`flush (${DEVICES / 2} devices)`, async () => { await a!.flush() })
  await b!.flush()
  await measure('refresh (every device saved since)', () => Promise.resolve(a!.refresh()))
  await measure('refresh (nothing saved since)', () => Promise.resolve(a!.refresh()))
}
const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!
const rows = [...samples].map(([step, list]) => ({
  step, rows: median(list.map((s) => s.rows)), 'wall ms (median)': round(median(list.map((s) => s.wallMs))), 'collector CPU ms (median)': round(median(list.map((s) => s.cpuMs))),
}))
printTable(rows)
process.stdout.write(`results: ${saveResults('fleet-group', { at: new Date().toISOString(), devices: DEVICES, rounds: ROUNDS, rows })}\n`)
await Promise.all([a!.close(), b!.close()])
await Promise.all(pools.map((pool) => pool.end()))
await server.stop()
