/**
 * The collector group's acceptance run (issue 15), on real parts: Debian's
 * PostgreSQL for the group's alerts and outbox, redis-server for the
 * streams and leases, victoria-metrics as the shared InfluxDB-compatible
 * store, two broker nodes and two `placeguard collector` processes, and a
 * webhook receiver as the SOC. 300 simulated devices publish through both
 * nodes; deterministic incidents (ACL violations, firmware downgrades and
 * replays, outdated and vulnerable firmware) are injected on devices of
 * both collectors' partitions, before and after one collector is killed
 * with SIGKILL — while it holds an alert whose delivery a stalled
 * database would not let it queue. After the run, as an operator and a
 * SOC would see it:
 * every acknowledged message stored exactly once, every incident one
 * alert with one id on both collectors' APIs, each alert's opening
 * delivered under one delivery id, and nothing on the clean devices.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest'
import { DEFAULT_SITES, type Incident, type KindMix, planFleet, runSimulation, type Scenario, type SimSnapshot, type TruthRecord } from '../../agent-sim/index.ts'
import { clusterKeys, clusterStatus, connectRedis, DEFAULT_PARTITIONS, partitionOf, type Redis } from '../../cluster/index.ts'
import type { Alert } from '../../shared/alert-contract.ts'
import { createLogger } from '../../shared/logger.ts'
import { waitFor } from '../helpers/broker.ts'
import { startClusterNode, type ClusterNodeProcess } from '../helpers/cluster-node.ts'
import { createTestFleet, type TestFleet } from '../helpers/fleet.ts'
import { freePort } from '../helpers/free-port.ts'
import { type HttpReceiver, startHttpReceiver } from '../helpers/http-receiver.ts'
import { startPostgres, waitForLockWait, type RunningPostgres } from '../helpers/postgres.ts'
import { startRedis, type RunningRedis } from '../helpers/redis-server.ts'
import { startVictoriaMetrics, type RunningVictoriaMetrics } from '../helpers/victoria-metrics.ts'

const BIN = fileURLToPath(new URL('../../bin/placeguard.js', import.meta.url))
const DEVICES = 300
const MIX: KindMix = { flood: 100, energy: 100, housing: 100 }
const SEED = 15
const VIEWER = 'group-e2e-viewer-token-0123456789'
const WEBHOOK_SECRET = `whsec_${randomBytes(32).toString('base64')}`
/**
 * When incidents are injected, ms from the simulation's start (its connect phase): once before the kill; once after
 * the kill, before the takeover (read by the survivor from the backlog); once after the takeover. A device need not
 * have published by then: the simulator holds a downgrade or a replay until the device has a message on the broker
 * to be told from.
 */
const BEFORE_KILL_AT = 7_000
const AFTER_KILL_AT = 14_000
const AFTER_TAKEOVER_AT = 26_000
const logger = createLogger({ level: 'silent' })

/** One `placeguard collector` of the group as its own process, on its own data directory and HTTP port. */
interface CollectorProcess {
  name: string
  apiUrl: string
  log: string[]
  start: () => Promise<void>
  kill: () => Promise<void>
  stop: () => Promise<void>
}

let redis: RunningRedis
let postgres: RunningPostgres
let store: RunningVictoriaMetrics
let soc: HttpReceiver
let fleet: TestFleet
let control: Redis
let db: pg.Pool
const nodes: ClusterNodeProcess[] = []
const collectors: CollectorProcess[] = []
const dirs: string[] = []

async function startCollector (name: string): Promise<CollectorProcess> {
  const dataDir = mkdtempSync(join(tmpdir(), `pg-${name}-`))
  dirs.push(dataDir)
  // The fleet's certificates, as a collector is deployed (the CA key stays with the operator).
  cpSync(fleet.paths.dir, join(dataDir, 'pki'), { recursive: true, filter: (source) => basename(source) !== 'ca.key' })
  const port = await freePort()
  const config = join(dataDir, 'collector.yaml')
  writeFileSync(config, [
    'logLevel: warn',
    'httpHost: 127.0.0.1',
    `apiTokens: "${VIEWER}:viewer"`,
    `influx: { url: "${store.url}", token: test-token, org: council, bucket: telemetry }`,
    `cluster: { collectorName: ${name} }`,
    `delivery: { sinks: [ { type: webhook, url: "${soc.url}", secrets: ["${WEBHOOK_SECRET}"] } ] }`,
  ].join('\n'))
  let child: ChildProcess | undefined
  const log: string[] = []
  const collector: CollectorProcess = {
    name, apiUrl: `http://127.0.0.1:${port}`, log,
    start: async () => {
      const started = spawn(process.execPath, [BIN, '--data-dir', dataDir, 'collector', '--config', config, '--redis-url', redis.url, '--http-port', String(port)], {
        stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PLACEGUARD_DATABASE_URL: postgres.url },
      })
      child = started
      const collect = (chunk: Buffer): void => {
        for (const line of chunk.toString().split('\n')) if (line.trim()) log.push(line)
        if (log.length > 300) log.splice(0, log.length - 300)
      }
      started.stdout!.on('data', collect)
      started.stderr!.on('data', collect)
      // The API listens once the service has started: migrated, and its first lease round done.
      await waitFor(async () => {
        if (started.exitCode !== null) throw new Error(`collector ${name} exited (${started.exitCode}): ${log.join('\n')}`)
        return await fetch(`${collector.apiUrl}/healthz`).then((response) => response.ok, () => false)
      }, 30_000, `collector ${name} listening`)
    },
    kill: () => halt(child, 'SIGKILL'),
    stop: () => halt(child, 'SIGTERM'),
  }
  await collector.start()
  return collector
}

async function halt (child: ChildProcess | undefined, signal: NodeJS.Signals): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill(signal)
  await exited
}

/** Who holds each partition's lease, by collector. */
async function holders (): Promise<Map<string, number[]>> {
  const byHolder = new Map<string, number[]>()
  for (const { partition, holder } of (await clusterStatus(control, clusterKeys(), DEFAULT_PARTITIONS)).partitions) {
    const key = holder ?? '(none)'
    byHolder.set(key, [...byHolder.get(key) ?? [], partition])
  }
  return byHolder
}

/** The condition, asked at most every `ms`: the API limits each token to 1,200 requests a minute. */
function atMostEvery (ms: number, condition: () => Promise<boolean>): () => Promise<boolean> {
  let last = 0
  return async () => {
    if (Date.now() - last < ms) return false
    last = Date.now()
    return await condition()
  }
}

/** Every alert a collector's API lists, all pages. */
async function alertsVia (collector: CollectorProcess): Promise<Alert[]> {
  const alerts: Alert[] = []
  let cursor: string | null = null
  do {
    const query = new URLSearchParams({ limit: '500', ...cursor ? { cursor } : {} })
    const response = await fetch(`${collector.apiUrl}/api/alerts?${query}`, { headers: { authorization: `Bearer ${VIEWER}` } })
    if (!response.ok) throw new Error(`GET /api/alerts on ${collector.name}: ${response.status} ${await response.text()}`)
    const page = await response.json() as { items: Alert[], next: string | null }
    alerts.push(...page.items)
    cursor = page.next
  } while (cursor)
  return alerts
}

beforeAll(async () => {
  [redis, postgres, store, soc, fleet] = await Promise.all([startRedis(), startPostgres(), startVictoriaMetrics(), startHttpReceiver(), createTestFleet()])
  control = connectRedis({ url: redis.url, name: 'test', logger })
  db = new pg.Pool({ connectionString: postgres.url, max: 2 })
  // PostgreSQL's fast shutdown at the end tells an idle connection it is terminated: expected then, not a failure.
  db.on('error', () => {})
  // Every device connects from 127.0.0.1: the per-address handshake cap must let a fleet through (docs/deploy.md).
  for (const id of ['node-1', 'node-2']) nodes.push(await startClusterNode(fleet, redis.url, id, { limits: { maxHandshakesPerAddress: 1_000 } }))
  for (const name of ['collector-a', 'collector-b']) collectors.push(await startCollector(name))
}, 120_000)

afterAll(async () => {
  for (const collector of collectors) await collector.stop()
  for (const node of nodes) await node.stop()
  control?.disconnect()
  await db?.end()
  await Promise.all([redis?.stop(), postgres?.stop(), store?.stop(), soc?.stop()])
  fleet?.cleanup()
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})

describe('a collector group on PostgreSQL, one collector killed mid-run', () => {
  it('stores each acknowledged message once, alerts each incident once under one id on both APIs, delivers each opening under one id, and nothing on clean devices', async () => {
    const [a, b] = collectors as [CollectorProcess, CollectorProcess]
    onTestFailed(() => {
      for (const collector of collectors) console.error(`--- ${collector.name} log (tail)\n${collector.log.slice(-40).join('\n')}`)
    })

    await waitFor(async () => (await holders()).get(b.name)?.length === DEFAULT_PARTITIONS / 2, 20_000, 'an 8/8 split of the partitions')
    const split = await holders()
    expect(split.get(a.name)).toHaveLength(8)
    const ofB = new Set(split.get(b.name))

    // Incidents on devices of both collectors' partitions, spread over the sites (too few of a policy at one site for
    // the storm guard to fold them): some before the kill, read by b; some after it, b's devices then read by a
    // from the state b handed on.
    const planned = planFleet(DEVICES, MIX, DEFAULT_SITES, SEED)
    const free = (kind: string, onB: boolean): string => {
      const index = planned.findIndex((d) => d.kind === kind && ofB.has(partitionOf(d.deviceId, DEFAULT_PARTITIONS)) === onB)
      if (index < 0) throw new Error(`no free ${kind} device on ${onB ? 'b' : 'a'}'s partitions`)
      return planned.splice(index, 1)[0]!.deviceId
    }
    const both = (kind: string) => ({ ids: [free(kind, true), free(kind, false)] })
    const incidents: Incident[] = [
      { policy: 'firmware-outdated', select: both('flood'), at: 0, fw: '2.9.0' },
      { policy: 'firmware-vulnerable', select: both('energy'), at: 0, fw: '5.2.2' },
      ...[BEFORE_KILL_AT, AFTER_KILL_AT, AFTER_TAKEOVER_AT].flatMap((at): Incident[] => [
        { policy: 'acl-violation', select: both('flood'), at, mode: 'foreign-publish' },
        { policy: 'firmware-downgrade', select: both('housing'), at, fw: '1.7.0' },
        { policy: 'replay', select: both('energy'), at, count: 2 },
      ]),
    ]
    const scenario: Scenario = { name: 'collector group e2e', smallSites: [], incidents }
    const truthFile = join(mkdtempSync(join(tmpdir(), 'pg-truth-')), 'truth.jsonl')
    dirs.push(join(truthFile, '..'))

    // Each acknowledged message by (device, seq, ts): a replay acknowledges an old seq again under a new ts.
    const acked = new Set<string>()
    let snapshot: SimSnapshot | undefined
    let simStartedAt = 0
    let fleetStoppedAt = 0
    const run = runSimulation({
      dataDir: fleet.dataDir, brokerUrls: nodes.map((node) => node.url), devices: DEVICES, intervalMs: 2_000, durationMs: 32_000, seed: SEED,
      mix: MIX, scenario, truthFile,
      onPhase: (phase) => {
        if (phase === 'connect') simStartedAt = Date.now()
        if (phase === 'stop') fleetStoppedAt = Date.now()
      },
      onProgress: (s) => { snapshot = s },
      onAcked: (deviceId, payload) => {
        const { seq, ts } = JSON.parse(payload) as { seq: number, ts: number }
        acked.add(`${deviceId} ${seq} ${ts}`)
      },
    })

    // b is killed with findings in hand. Once the incidents at the start are alerted and delivered, the database
    // stalls the outbox (a lock on it, as a slow or contended PostgreSQL would): b opens its first alert of the
    // first wave but cannot queue its delivery, so it must not acknowledge the entries it has in hand (the ack
    // barrier). Killed then, it leaves them pending for a, which handles them again and queues the 'opened' that
    // b never could (the repair of a repeated alert).
    const atStartOnB = incidents.filter((incident) => incident.at === 0).map((incident) => `${incident.policy} ${incident.select.ids![0]!}`)
    await waitFor(atMostEvery(250, async () => {
      if (snapshot?.connected !== DEVICES) return false
      const delivered = new Set(soc.requests.map((request) => (JSON.parse(request.body) as Alert).id))
      const alerts = new Map((await alertsVia(b)).map((alert) => [`${alert.policy} ${alert.deviceId}`, alert.id]))
      return atStartOnB.every((key) => delivered.has(alerts.get(key) ?? ''))
    }), 60_000, 'the fleet connected and b\'s incidents at the start alerted and delivered')
    // Alerts open on b's devices whose opening is neither queued nor delivered: findings b has in hand.
    const unqueuedOnB = async (): Promise<string[]> => (await db.query<{ policy: string, device_id: string }>(`SELECT policy, device_id FROM alerts a
      WHERE status <> 'resolved' AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.alert_id = a.id) AND NOT EXISTS (SELECT 1 FROM delivered_marks m WHERE m.alert_id = a.id)`)).rows
      .filter((row) => ofB.has(partitionOf(row.device_id, DEFAULT_PARTITIONS))).map((row) => `${row.policy} ${row.device_id}`)
    const stall = await db.connect()
    let killedAt: number
    let diedWith: string[]
    try {
      // Stalled only with nothing queued and no collector holding the sink: b is to die holding a finding, not in
      // the middle of a send (its claim on the sink would outlive it for the sink lease, 60 s).
      await waitFor(async () => {
        await stall.query('BEGIN')
        await stall.query('LOCK TABLE deliveries IN EXCLUSIVE MODE')
        const { rows } = await stall.query<{ idle: boolean }>('SELECT NOT EXISTS (SELECT 1 FROM deliveries) AND NOT EXISTS (SELECT 1 FROM sinks WHERE holder IS NOT NULL) AS idle')
        if (!rows[0]!.idle) await stall.query('ROLLBACK')
        return rows[0]!.idle
      }, 10_000, 'the outbox idle')
      await waitFor(atMostEvery(250, async () => (await unqueuedOnB()).length > 0), 30_000, 'b holding an alert whose opening it cannot queue')
      await waitForLockWait(db, `placeguard-collector-${b.name}`, 30_000)
      await b.kill()
      killedAt = Date.now()
      diedWith = await unqueuedOnB()
    } finally {
      await stall.query('ROLLBACK')
      stall.release()
    }
    if (killedAt - simStartedAt >= AFTER_KILL_AT) throw new Error(`b was killed ${killedAt - simStartedAt} ms into the run, after the incidents meant for after the kill: too slow a run to test the move`)
    await waitFor(async () => (await holders()).get(a.name)?.length === DEFAULT_PARTITIONS, 30_000, 'a holding every partition')
    const takeoverMs = Date.now() - killedAt
    const summary = await run

    // b comes back (same name, same data directory) to show the group's alerts through its own API.
    await b.start()
    const truth = readFileSync(truthFile, 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line) as TruthRecord)
    expect(truth).toHaveLength(incidents.flatMap((incident) => incident.select.ids!).length)
    const incidentKeys = new Set(truth.map((record) => `${record.policy} ${record.deviceId}`))
    const fleetIds = new Set(planFleet(DEVICES, MIX, DEFAULT_SITES, SEED).map((device) => device.deviceId))
    const deviceAlerts = async (collector: CollectorProcess): Promise<Alert[]> => (await alertsVia(collector)).filter((alert) => fleetIds.has(alert.deviceId))

    // Settled: every stream entry read and acknowledged, every incident alerted, every delivery sent.
    let waitingFor = ''
    await waitFor(atMostEvery(250, async () => {
      const status = await clusterStatus(control, clusterKeys(), DEFAULT_PARTITIONS)
      const undrained = status.partitions.filter((p) => p.pending > 0 || (p.lag ?? 0) > 0).length
      const alerted = new Set((await deviceAlerts(a)).map((alert) => `${alert.policy} ${alert.deviceId}`))
      const unalerted = [...incidentKeys].filter((key) => !alerted.has(key))
      const queued = (await db.query<{ queued: number }>('SELECT count(*)::int AS queued FROM deliveries')).rows[0]!.queued
      waitingFor = `${undrained} partitions not drained, incidents not alerted: [${unalerted.join(', ')}], ${queued} deliveries queued`
      return undrained === 0 && unalerted.length === 0 && queued === 0
    }), 60_000, 'the streams drained, every incident alerted and every delivery sent')
      .catch((error: Error) => { throw new Error(`${error.message}: ${waitingFor}`) })

    // 1. Every acknowledged message is in the store, once. The store's point is (series, timestamp), as in
    //    InfluxDB, which keeps one point per measurement, tags and time: a message written again after the
    //    takeover (the dead collector's unacknowledged batch, handled again) or resent by a reconnecting device
    //    is the same point. victoria-metrics (without -dedup.minScrapeInterval) keeps such a rewrite as a second
    //    raw sample at the same timestamp, so those are counted, not failed. A message stored twice is the same
    //    (device, seq) under two timestamps that the device did not send twice.
    const stored = new Map<string, Map<number, number>>()
    for (const series of await store.exportSeries('{__name__=~"(flood|energy|housing)_seq"}')) {
      series.values.forEach((seq, i) => {
        const key = `${series.metric.device} ${seq}`
        const times = stored.get(key) ?? stored.set(key, new Map()).get(key)!
        times.set(series.timestamps[i]!, (times.get(series.timestamps[i]!) ?? 0) + 1)
      })
    }
    const missing = [...acked].filter((message) => {
      const [device, seq, ts] = message.split(' ')
      return !stored.get(`${device} ${seq}`)?.has(Number(ts))
    })
    expect(missing).toEqual([])
    const sentTimes = new Map<string, Set<number>>()
    for (const message of acked) {
      const [device, seq, ts] = message.split(' ')
      const key = `${device} ${seq}`
      ;(sentTimes.get(key) ?? sentTimes.set(key, new Set()).get(key)!).add(Number(ts))
    }
    const storedTwice = [...stored].filter(([key, times]) => times.size > Math.max(1, sentTimes.get(key)?.size ?? 0)).map(([key, times]) => `${key} at ${[...times.keys()].join(', ')}`)
    expect(storedTwice).toEqual([])
    const rewrites = [...stored.values()].reduce((sum, times) => sum + [...times.values()].reduce((n, copies) => n + copies - 1, 0), 0)

    // 2. Every incident is one alert of its policy on its device, with the same id through both collectors' APIs.
    const viaA = await deviceAlerts(a)
    const viaB = await deviceAlerts(b)
    const idsOf = (alerts: Alert[]) => alerts.map((alert) => `${alert.policy} ${alert.deviceId} ${alert.id}`).sort()
    const incidentAlerts = viaA.filter((alert) => incidentKeys.has(`${alert.policy} ${alert.deviceId}`))
    expect(incidentAlerts.map((alert) => `${alert.policy} ${alert.deviceId}`).sort()).toEqual([...incidentKeys].sort())
    expect(idsOf(viaB)).toEqual(idsOf(viaA))

    // 3. Each alert's opening reached the SOC under one delivery id (a retry repeats the same webhook-id; a
    //    second id would be a second delivery), and so did every other change delivered.
    const deliveryIds = new Map<string, Set<string>>()
    for (const request of soc.requests) {
      const alert = JSON.parse(request.body) as Alert
      const key = `${alert.id} ${alert.status}`
      ;(deliveryIds.get(key) ?? deliveryIds.set(key, new Set()).get(key)!).add(String(request.headers['webhook-id']))
    }
    expect(incidentAlerts.filter((alert) => deliveryIds.get(`${alert.id} open`)?.size !== 1).map((alert) => `${alert.policy} ${alert.deviceId}: ${deliveryIds.get(`${alert.id} open`)?.size ?? 0} ids`)).toEqual([])
    expect([...deliveryIds].filter(([, ids]) => ids.size !== 1).map(([key, ids]) => `${key}: ${[...ids].join(', ')}`)).toEqual([])

    // 4. No device outside the ground truth has an alert: the move opened no silence, replay or downgrade. (Once the
    //    simulated fleet stops, every device falls silent for real, and is rightly alerted on a few intervals later.)
    const silentForReal = (alert: Alert) => alert.policy === 'device-silent' && Date.parse(alert.detectedAt) >= fleetStoppedAt
    expect(viaA.filter((alert) => !incidentKeys.has(`${alert.policy} ${alert.deviceId}`) && !silentForReal(alert)).map((alert) => `${alert.policy} ${alert.deviceId}: ${alert.summary}`)).toEqual([])

    console.error(`collector group: b killed ${killedAt - simStartedAt} ms into the run with ${diedWith.join(', ')} opened and not queued for delivery; a held all ${DEFAULT_PARTITIONS} partitions ${takeoverMs} ms later; ` +
      `${acked.size} acknowledged, ${stored.size} (device, seq) stored, ${rewrites} rewritten samples; ` +
      `${incidentAlerts.length} incident alerts, ${viaA.length} device alerts in all; ${soc.requests.length} webhook requests under ${new Set(soc.requests.map((r) => r.headers['webhook-id'])).size} delivery ids; ` +
      `${summary.drops} device drops`)
  }, 240_000)
})
