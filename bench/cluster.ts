/**
 * npm run bench:cluster — the broker cluster against the single-process
 * broker, same run, same certificates, same simulated fleet (agent-sim),
 * on this machine's same cores (three nodes on two cores share them: the
 * figures show the cost of the cluster's work, not a gain in capacity).
 *
 *   single     `placeguard broker` (SQLite state), devices direct
 *   1 node     one cluster node on redis-server, devices direct
 *   3 nodes    three cluster nodes behind HAProxy (TCP mode)
 *
 * Each: D devices connect, then publish telemetry at QoS 1 for a while at
 * a pace above what the machine takes (rate limits off). Reported:
 * connects/s, acknowledged msg/s, PUBACK p99, broker CPU per message (all
 * nodes), Redis commands and CPU per message. Then node loss: 2,000
 * devices through HAProxy, one node SIGKILLed, the time until every
 * device is connected again.
 *
 * Then the collector group (bench/cluster-collectors.ts): one and two
 * collector processes draining the same backlog from the streams (ingest
 * and detection; CPU per message), and a collector's SIGKILL: the time
 * until the other holds every partition and has stored what it had.
 *
 * Then the alert book's writes over SQLite and over PostgreSQL
 * (bench/cluster-alert-writes.ts): latency of an open, a refresh and an
 * acknowledge, N raises back to back, and two writers on the same keys;
 * PostgreSQL also fenced by a partition's lease, as a group's detection writes.
 *
 *   npm run bench:cluster -- [--devices 1000] [--seconds 20] [--loss-devices 2000] [--entries 200000]
 *     [--alert-samples 1000] [--alert-raises 5000] [--only nodes|collectors|alert-writes]
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { runSimulation, type SimulationSummary, type SimSnapshot } from '../agent-sim/index.ts'
import { FleetPki, pkiPaths } from '../pki/index.ts'
import { startClusterNode, type ClusterNodeProcess } from '../test/helpers/cluster-node.ts'
import { startHaproxy } from '../test/helpers/haproxy.ts'
import { startRedis, type RunningRedis } from '../test/helpers/redis-server.ts'
import { freePort, startPlaceGuard } from './lib/brokers.ts'
import { printTable, round, saveResults } from './lib/report.ts'
import { benchCollectors } from './cluster-collectors.ts'
import { benchAlertWrites, type AlertWriteRow } from './cluster-alert-writes.ts'

const { values } = parseArgs({ options: {
  devices: { type: 'string', default: '1000' },
  seconds: { type: 'string', default: '20' },
  'loss-devices': { type: 'string', default: '2000' },
  entries: { type: 'string', default: '200000' },
  'alert-samples': { type: 'string', default: '1000' },
  'alert-raises': { type: 'string', default: '5000' },
  only: { type: 'string' },
} })
const SECTIONS = ['nodes', 'collectors', 'alert-writes']
if (values.only !== undefined && !SECTIONS.includes(values.only)) {
  throw new Error(`--only: ${values.only} is not a section; give one of ${SECTIONS.join(', ')}`)
}
const ALERT_SAMPLES = Number(values['alert-samples'])
const ALERT_RAISES = Number(values['alert-raises'])
// The book queues at most 10,000 detection writes over PostgreSQL (maxQueuedWrites), and refuses the rest.
if (!Number.isInteger(ALERT_SAMPLES) || ALERT_SAMPLES < 1) throw new Error(`--alert-samples: ${values['alert-samples']} is not a whole number of 1 or more`)
if (!Number.isInteger(ALERT_RAISES) || ALERT_RAISES < 1 || ALERT_RAISES > 10_000) throw new Error(`--alert-raises: ${values['alert-raises']} is not a whole number from 1 to 10000`)
/** Whether a section runs: all of them without --only. */
const runs = (section: string): boolean => values.only === undefined || values.only === section
const DEVICES = Number(values.devices)
const SECONDS = Number(values.seconds)
const LOSS_DEVICES = Number(values['loss-devices'])
/** Rate limits off and the per-address caps out of the way: this measures the brokers, not the policy (HAProxy is one address). */
const LIMITS = { publishRatePerSec: 0, maxConnections: 50_000, maxHandshakesPerAddress: 5_000, maxConnectionsPerAddress: 50_000 }

const cpuOf = (pid: number): number => {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100
}

async function redisStats (redis: RunningRedis): Promise<{ commands: number, cpuS: number }> {
  const { connectRedis } = await import('../cluster/index.ts')
  const { createLogger } = await import('../shared/logger.ts')
  const client = connectRedis({ url: redis.url, name: 'bench', logger: createLogger({ level: 'silent' }) })
  try {
    const info = await client.info()
    const read = (key: string): number => Number(new RegExp(`^${key}:([\\d.]+)`, 'm').exec(info)?.[1] ?? 0)
    return { commands: read('total_commands_processed'), cpuS: read('used_cpu_sys') + read('used_cpu_user') }
  } finally {
    client.disconnect()
  }
}

interface Row { setup: string, devices: number, connectsPerSec: number, msgPerSec: number, pubackP99Ms: number | null, brokerCpuUsPerMsg: number, redisCmdsPerMsg: number | null, redisCpuUsPerMsg: number | null }

async function measure (setup: string, dataDir: string, urls: string[], brokerPids: () => number[], redis: RunningRedis | undefined): Promise<Row> {
  const cpuBefore = brokerPids().reduce((sum, pid) => sum + cpuOf(pid), 0)
  const redisBefore = redis && await redisStats(redis)
  let snapshot: SimSnapshot | undefined
  const summary = await runSimulation({
    dataDir, brokerUrls: urls, devices: DEVICES, intervalMs: 250, durationMs: SECONDS * 1_000, seed: 18, connectConcurrency: 64,
    onProgress: (s) => { snapshot = s; process.stderr.write(`\r${setup}: ${s.connected}/${s.devices} connected, ${s.acked} acked   `) },
  })
  process.stderr.write('\n')
  void snapshot
  const cpu = brokerPids().reduce((sum, pid) => sum + cpuOf(pid), 0) - cpuBefore
  const redisAfter = redis && await redisStats(redis)
  return {
    setup, devices: summary.connected,
    connectsPerSec: round(summary.connected / (summary.connectMs / 1_000), 0),
    msgPerSec: round(summary.ackedPerSec, 0),
    pubackP99Ms: summary.publishAckP99Ms === null ? null : round(summary.publishAckP99Ms, 1),
    // Connecting is in it too: the fleet's whole run, divided by its messages.
    brokerCpuUsPerMsg: round(cpu * 1e6 / summary.acked, 0),
    redisCmdsPerMsg: redisBefore && redisAfter ? round((redisAfter.commands - redisBefore.commands) / summary.acked, 2) : null,
    redisCpuUsPerMsg: redisBefore && redisAfter ? round((redisAfter.cpuS - redisBefore.cpuS) * 1e6 / summary.acked, 0) : null,
  }
}

const dataDir = mkdtempSync(join(tmpdir(), 'placeguard-bench-cluster-'))
const pki = new FleetPki(dataDir)
await pki.init()
pki.close()
const rows: Row[] = []
let alertWrites: AlertWriteRow[] | undefined
let collectors: Awaited<ReturnType<typeof benchCollectors>> | undefined
let loss: { devices: number, killedNode: string, summary: SimulationSummary, backMs: number } | undefined
try {
  if (runs('nodes')) {
  // 1. the single-process broker
  {
    const port = await freePort()
    const broker = await startPlaceGuard(dataDir, port, LIMITS)
    try {
      rows.push(await measure('single broker', dataDir, [`mqtts://127.0.0.1:${port}`], () => [broker.pid], undefined))
    } finally {
      await broker.stop()
    }
  }
  // 2. one node, 3. three nodes behind HAProxy
  for (const count of [1, 3]) {
    const redis = await startRedis()
    const nodes: ClusterNodeProcess[] = []
    try {
      for (let n = 1; n <= count; n++) nodes.push(await startClusterNode({ paths: pkiPaths(dataDir) }, redis.url, `node-${n}`, { limits: LIMITS }))
      const lb = count > 1 ? await startHaproxy({ backends: nodes.map((node) => ({ name: node.nodeId, port: node.port })) }) : undefined
      try {
        rows.push(await measure(count === 1 ? '1 cluster node' : '3 nodes, HAProxy', dataDir, [lb?.url ?? nodes[0]!.url], () => nodes.map((node) => node.child().pid!), redis))
        if (lb && LOSS_DEVICES > 0) {
          // 4. node loss: a steady fleet, one node killed, every device back.
          let snapshot: SimSnapshot | undefined
          let killedAt = 0
          let backAt = 0
          const run = runSimulation({
            dataDir, brokerUrl: lb.url, devices: LOSS_DEVICES, intervalMs: 5_000, durationMs: 40_000, seed: 19, connectConcurrency: 64,
            onProgress: (s) => {
              snapshot = s
              if (killedAt > 0 && backAt === 0 && s.connected === LOSS_DEVICES) backAt = performance.now()
              process.stderr.write(`\rnode loss: ${s.connected}/${s.devices} connected   `)
            },
          })
          while (snapshot?.connected !== LOSS_DEVICES) await new Promise((resolve) => setTimeout(resolve, 200))
          await new Promise((resolve) => setTimeout(resolve, 5_000))
          await nodes[0]!.kill()
          killedAt = performance.now()
          const summary = await run
          process.stderr.write('\n')
          loss = { devices: LOSS_DEVICES, killedNode: nodes[0]!.nodeId, summary, backMs: backAt > 0 ? round(backAt - killedAt, 0) : -1 }
        }
      } finally {
        await lb?.stop()
      }
    } finally {
      for (const node of nodes) await node.stop()
      await redis.stop()
    }
  }
  }
  if (runs('collectors')) collectors = await benchCollectors(pkiPaths(dataDir).dir, Number(values.entries))
  if (runs('alert-writes')) alertWrites = await benchAlertWrites({ samples: ALERT_SAMPLES, raises: ALERT_RAISES })
} finally {
  rmSync(dataDir, { recursive: true, force: true })
}

if (rows.length > 0) {
const single = rows[0]!
printTable(rows.map((row) => ({
  setup: row.setup, devices: row.devices, 'connects/s': row.connectsPerSec, 'msg/s': row.msgPerSec, 'PUBACK p99 ms': row.pubackP99Ms ?? '-',
  'broker CPU µs/msg': row.brokerCpuUsPerMsg, '× single': round(row.brokerCpuUsPerMsg / single.brokerCpuUsPerMsg, 2),
  'Redis cmds/msg': row.redisCmdsPerMsg ?? '-', 'Redis CPU µs/msg': row.redisCpuUsPerMsg ?? '-',
})))
if (loss) {
  process.stdout.write(`\nnode loss: ${loss.devices} devices through HAProxy, ${loss.killedNode} SIGKILLed: all connected again after ${loss.backMs} ms` +
    ` (${loss.summary.drops} drops; reconnect p50 ${loss.summary.timeToReconnectP50Ms} ms, p99 ${loss.summary.timeToReconnectP99Ms} ms, max ${loss.summary.timeToReconnectMaxMs} ms; ${loss.summary.dropsNotReconnected} not back)\n`)
}
}
if (collectors) {
  process.stdout.write('\n')
  printTable(collectors.rows.map((row) => ({ collectors: row.collectors, entries: row.entries, 's': row.seconds, 'msg/s (ingest + detection)': row.msgPerSec, 'collector CPU µs/msg': row.cpuUsPerMsg })))
  process.stdout.write(`\ncollector SIGKILLed (of two, 8/8): the other held all 16 partitions after ${collectors.takeover.leasesBackMs} ms; every entry stored after ${collectors.takeover.backlogStoredMs} ms\n`)
}
if (alertWrites) {
  process.stdout.write('\n')
  const ms = ({ p50, p99, max }: { p50: number, p99: number, max: number }) => `${p50} / ${p99} / ${max}`
  printTable(alertWrites.map((row) => ({
    store: row.store, 'open ms p50/p99/max': ms(row.open), 'refresh ms p50/p99/max': ms(row.refresh), 'acknowledge ms p50/p99/max': ms(row.acknowledge),
    [`${row.oneWriter.raises} raises/s`]: row.oneWriter.perSec, [`2 writers, ${2 * row.oneWriter.raises} raises/s`]: row.twoWriters?.perSec ?? '-',
    // Checked in the section: it fails unless each key has exactly one live alert with both writers' raises.
    'keys / live alerts': row.twoWriters ? `${row.twoWriters.keys} / ${row.twoWriters.liveAlerts}` : '-',
  })))
}
process.stdout.write(`results: ${saveResults('cluster', { at: new Date().toISOString(), machine: { cpus: (await import('node:os')).cpus().length }, rows, collectors, alertWrites, loss: loss && { ...loss, summary: undefined, drops: loss.summary.drops, p50: loss.summary.timeToReconnectP50Ms, p99: loss.summary.timeToReconnectP99Ms, max: loss.summary.timeToReconnectMaxMs } })}\n`)
