/**
 * npm run bench — every figure issue 18 asks for, in one run, one table:
 * the broker's fleet path and memory against mosquitto (same machine, same
 * certificates, same clients, each bench in this run), the reconnect storm,
 * provisioning, and the end-to-end ingest ceiling. Each bench runs as its
 * own process (its own `npm run bench:…` is the reference for what it
 * does) and saves its figures under bench/results/; this reads them back,
 * prints the table with the machine and the date, and writes it into
 * docs/benchmarks.md between the `bench:summary` markers.
 *
 *   npm run bench -- [--quick]   (--quick: smaller fleets, to try it out)
 */
import { execFileSync, spawn } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, totalmem } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { printTable, round } from './lib/report.ts'

const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false } } })
const quick = values.quick
const ROOT = join(import.meta.dirname, '..')
/** The machine's load when the run began: other work on a shared machine moves absolute figures (the ratios less). */
const loadAtStart = loadavg()[0]!
const DOC = join(ROOT, 'docs', 'benchmarks.md')
const START = '<!-- bench:summary:start -->'
const END = '<!-- bench:summary:end -->'

/** Runs one bench script, its output passed through; answers the figures it saved. */
function runBench (script: string, args: string[]): Promise<Record<string, unknown> | undefined> {
  process.stderr.write(`\n== ${script} ${args.join(' ')}\n`)
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(ROOT, 'bench', script), ...args], { stdio: ['ignore', 'pipe', 'inherit'] })
    let output = ''
    child.stdout.on('data', (chunk: Buffer) => { output += chunk; process.stdout.write(chunk) })
    child.once('exit', (code) => {
      const saved = /^(?:results|saved): (.+\.json)$/m.exec(output)?.[1]
      if (code !== 0 || !saved) {
        process.stderr.write(`${script} did not finish (exit ${code}); its rows are left out\n`)
        return resolve(undefined)
      }
      resolve(JSON.parse(readFileSync(saved, 'utf8')) as Record<string, unknown>)
    })
  })
}

interface Row { measure: string, placeguard: string, mosquitto: string, ratio: string, floor: string, codecFloor: string, aedes: string, target: string, met: string }
const rows: Row[] = []

/**
 * `floor`: the same figure for Node's TLS floor (lib/tls-floor-broker.ts),
 * with its ratio to mosquitto — what any broker on Node pays before broker work.
 */
function row (measure: string, pg: number | undefined, mq: number | undefined, target: string, check: (value: number) => boolean, useRatio = true, floor?: number): void {
  const value = useRatio ? (pg !== undefined && mq ? round(pg / mq, 2) : undefined) : pg
  rows.push({
    measure, placeguard: pg === undefined ? '–' : String(pg), mosquitto: mq === undefined ? '–' : String(mq),
    ratio: useRatio && value !== undefined ? `${value}×` : '–',
    floor: floor === undefined ? '–' : mq ? `${floor} (${round(floor / mq, 2)}×)` : String(floor), codecFloor: '–', aedes: '–', target,
    met: value === undefined ? 'not measured' : check(value) ? 'yes' : 'no',
  })
}

/**
 * The last row's figures for the two other references on Node, run in the
 * steady-fleet bench only: the TLS floor with the MQTT codec
 * (lib/mqtt-codec-floor-broker.ts), and aedes as shipped (lib/aedes-broker.ts).
 */
function withReferences (mq: number | undefined, codecFloor: number | undefined, aedes: number | undefined): void {
  const last = rows.at(-1)!
  const cell = (value: number | undefined): string => value === undefined ? '–' : mq ? `${value} (${round(value / mq, 2)}×)` : String(value)
  last.codecFloor = cell(codecFloor)
  last.aedes = cell(aedes)
}

type Figures = Record<string, number>
const dig = (value: unknown, ...path: string[]): Figures | undefined => {
  let node = value as Record<string, unknown> | undefined
  for (const key of path) node = node?.[key] as Record<string, unknown> | undefined
  return node as Figures | undefined
}
const perMessageUs = (figures: Figures | undefined): number | undefined => figures && round(figures.brokerCpuS! * 1e6 / figures.messages!, 1)

// Provisioning first: it ends in one `sync -f` of the filesystem, which
// would otherwise also wait for what the other benches left to write back.
const pki = await runBench('pki.ts', quick ? ['--devices', '1000'] : ['--devices', '10000'])
const pkiRows = pki?.rows as Array<Record<string, number | string>> | undefined
const ecdsa = pkiRows?.[0] as Figures | undefined
// Its floor: a key, a signature and two files per identity, bare (bench/pki.ts).
const pkiFloor = pkiRows?.find((r) => String(r.method).startsWith('floor')) as Figures | undefined
row(`${quick ? '1,000' : '10,000'} ECDSA identities provisioned as files, s`, ecdsa?.totalS, undefined, '≤ 3 s', (s) => s <= 3, false, pkiFloor?.totalS)
// The same batch into one archive (`pki issue-batch --archive`): no 20,000 files to create, so the files' floor does not bind it.
const archived = pkiRows?.find((r) => String(r.method).endsWith('one archive')) as Figures | undefined
row(`${quick ? '1,000' : '10,000'} ECDSA identities provisioned into one archive, s`, archived?.totalS, undefined, '≤ 3 s', (s) => s <= 3, false)

// 1. Bursts: the fleet at QoS 1 (1,000 and 5,000 devices), idle connections, the 200k stream.
for (const devices of quick ? [300] : [1_000, 5_000]) {
  const perDevice = devices >= 5_000 ? 20 : 100
  const first = devices === 1_000 || quick
  const broker = await runBench('broker.ts', ['--brokers', 'placeguard,mosquitto,node-tls-floor', '--cases', first ? 'gateway,fleet' : 'fleet',
    '--devices', String(devices), '--per-device', String(perDevice), '--messages', quick ? '20000' : '200000'])
  const pg = dig(broker, 'results', 'placeguard', 'fleet')
  const mq = dig(broker, 'results', 'mosquitto', 'fleet')
  const fl = dig(broker, 'results', 'node-tls-floor', 'fleet')
  row(`fleet ${devices}×${perDevice} QoS 1, msg/s`, pg?.msgPerSec, mq?.msgPerSec, '≥ 1.0×', (r) => r >= 1, true, fl?.msgPerSec)
  row(`fleet ${devices}×${perDevice} QoS 1, broker CPU µs/msg`, perMessageUs(pg), perMessageUs(mq), '≤ 1.2×', (r) => r <= 1.2, true, perMessageUs(fl))
  if (first) {
    row('idle mTLS connection, KiB', pg?.idleKiBPerConnection, mq?.idleKiBPerConnection, '≤ 1.5×', (r) => r <= 1.5, true, fl?.idleKiBPerConnection)
    const pgStream = dig(broker, 'results', 'placeguard', 'gateway')
    const mqStream = dig(broker, 'results', 'mosquitto', 'gateway')
    // No floor here: it copies without back-pressure, so its stream memory says nothing about Node's.
    row(`broker peak RSS during a ${quick ? '20k' : '200k'} stream, MiB`, pgStream?.brokerPeakRssMiB, mqStream?.brokerPeakRssMiB, 'bounded', () => true)
  }
}

// 2. The daily load: steady QoS 1 from the simulator.
// With the two other references on Node: what MQTT's codec costs on the TLS floor, and what aedes costs as shipped.
const load = await runBench('fleet-load.ts', [...quick ? ['--devices', '300', '--duration', '10s'] : ['--devices', '2000', '--duration', '30s'],
  '--brokers', 'placeguard,mosquitto,node-tls-floor,mqtt-codec-floor,aedes'])
const pgLoad = dig(load, 'results', 'placeguard')
const mqLoad = dig(load, 'results', 'mosquitto')
const floorLoad = dig(load, 'results', 'node-tls-floor')
const codecLoad = dig(load, 'results', 'mqtt-codec-floor')
const aedesLoad = dig(load, 'results', 'aedes')
for (const [measure, key, target] of [
  ['steady fleet, broker CPU µs per acknowledged msg', 'cpuUsPerMessage', 1.2],
  ['steady fleet, RSS per connected device idle, KiB', 'idleKiBPerDevice', 1.5],
  ['steady fleet, RSS per connected device under load, KiB', 'loadKiBPerDevice', 1.5],
] as const) {
  row(measure, pgLoad?.[key], mqLoad?.[key], `≤ ${target}×`, (r) => r <= target, true, floorLoad?.[key])
  withReferences(mqLoad?.[key], codecLoad?.[key], aedesLoad?.[key])
}

// 3. Reconnect storm with TLS session resumption: the fleet dropped at once (tickets), the same without
// tickets (full handshakes), and the broker killed and restarted.
const storm = await runBench('storm.ts', ['--brokers', 'placeguard,mosquitto,node-tls-floor', ...quick ? ['--devices', '1000'] : []])
const stormOf = (broker: string, kind: string): Figures | undefined =>
  (storm?.results as Array<Figures & { broker: string, storm: string }> | undefined)?.find((r) => r.broker === broker && r.storm === kind)
const stormSize = quick ? '1k' : '10k'
for (const [kind, label] of [['drop', 'dropped at once, resumed'], ['restart', 'broker restarted']] as const) {
  row(`reconnect storm ${stormSize}, ${label}: all back, s`, stormOf('placeguard', kind)?.allBackS, stormOf('mosquitto', kind)?.allBackS, '≤ 10 s', (s) => s <= 10, false, stormOf('node-tls-floor', kind)?.allBackS)
}
const resumedShare = (figures: Figures | undefined) => figures && round(100 * figures.resumed! / Math.max(1, figures.resumed! + figures.full!), 0)
row(`reconnect storm ${stormSize}, dropped: resumed handshakes, %`, resumedShare(stormOf('placeguard', 'drop')), resumedShare(stormOf('mosquitto', 'drop')), 'reported', () => true, false)
row('reconnect storm: broker CPU ms per resumed reconnect', stormOf('placeguard', 'drop')?.cpuMsPerReconnect, stormOf('mosquitto', 'drop')?.cpuMsPerReconnect, 'reported', () => true, true, stormOf('node-tls-floor', 'drop')?.cpuMsPerReconnect)
// The fleet's side of the same handshakes runs on the same cores: with the broker's, it sets how fast any broker can bring the fleet back here.
row(`reconnect storm ${stormSize}, dropped: the simulated fleet's own CPU, s`, stormOf('placeguard', 'drop')?.fleetCpuS, stormOf('mosquitto', 'drop')?.fleetCpuS, 'reported', () => true, false, stormOf('node-tls-floor', 'drop')?.fleetCpuS)
row('reconnect storm: broker CPU ms per full reconnect', stormOf('placeguard', 'full')?.cpuMsPerReconnect, stormOf('mosquitto', 'full')?.cpuMsPerReconnect, 'reported', () => true, true, stormOf('node-tls-floor', 'full')?.cpuMsPerReconnect)

// 4. End to end: broker + collector + store, zero loss, the stored data keeping up (bench/ingest.ts's `keepsUp`).
const ingest = await runBench('ingest.ts', quick ? ['--devices', '300', '--duration', '10s'] : ['--devices', '500,1000,1500', '--duration', '20s'])
type IngestStep = { placeguard: Figures & { keepsUp?: boolean, cpuUsPerMsg?: Record<string, number | null> }, mosquitto?: Figures }
const steps = (ingest?.results as IngestStep[] | undefined) ?? []
/** The step with the largest offered load (ingest.ts may try smaller fleets after the ones asked for). */
const heaviestOf = (candidates: IngestStep[]): IngestStep | undefined =>
  candidates.reduce<IngestStep | undefined>((most, step) => !most || step.placeguard.offeredPerSec! > most.placeguard.offeredPerSec! ? step : most, undefined)
const ceiling = heaviestOf(steps.filter((step) => step.placeguard.keepsUp))
row('end-to-end ceiling (zero loss, store keeping up), msg/s offered', ceiling?.placeguard.offeredPerSec, ceiling?.mosquitto?.ackedPerSec, 'reported (mosquitto: + bare subscriber, acked)', () => true)
const heaviest = heaviestOf(steps)?.placeguard.cpuUsPerMsg
for (const component of ['broker', 'collector', 'store'] as const) {
  const value = heaviest?.[component]
  row(`end-to-end, ${component} CPU µs per message (heaviest load)`, value ?? undefined, undefined, 'reported', () => true, false)
}

const mosquittoVersion = (() => {
  try { return /mosquitto version (\S+)/.exec(execFileSync('/usr/sbin/mosquitto', ['-h'], { encoding: 'utf8' }))?.[1] ?? '?' } catch (error) {
    return /mosquitto version (\S+)/.exec(String((error as { stdout?: string }).stdout))?.[1] ?? '?'
  }
})()
const machine = `${cpus().length} × ${cpus()[0]?.model.trim() ?? 'cpu'}, ${round(totalmem() / 2 ** 30, 0)} GiB, Node ${process.versions.node}, mosquitto ${mosquittoVersion}`
const date = new Date().toISOString().slice(0, 16).replace('T', ' ')
const loadNote = `load average ${round(loadAtStart, 1)} at the start, ${round(loadavg()[0]!, 1)} at the end`
process.stdout.write(`\n${machine} — ${date} UTC, ${loadNote}${quick ? ' (quick)' : ''}\n`)
printTable(rows as unknown as Array<Record<string, string>>)

if (!quick) {
  const table = [
    `Machine: ${machine}. Run: ${date} UTC, \`npm run bench\`, ${loadNote}.`, '',
    '| measure | PlaceGuard | mosquitto | ratio | Node TLS floor (÷ mosquitto) | + MQTT codec (÷ mosquitto) | aedes as shipped (÷ mosquitto) | target | met |',
    '|---|---:|---:|---:|---:|---:|---:|---|---|',
    ...rows.map((r) => `| ${r.measure} | ${r.placeguard} | ${r.mosquitto} | ${r.ratio} | ${r.floor} | ${r.codecFloor} | ${r.aedes} | ${r.target} | ${r.met} |`),
  ].join('\n')
  const doc = readFileSync(DOC, 'utf8')
  const at = doc.indexOf(START)
  const end = doc.indexOf(END)
  if (at < 0 || end < at) throw new Error(`docs/benchmarks.md has no ${START} … ${END} section to write into`)
  writeFileSync(DOC, `${doc.slice(0, at + START.length)}\n${table}\n${doc.slice(end)}`)
  process.stdout.write('written to docs/benchmarks.md\n')
}
