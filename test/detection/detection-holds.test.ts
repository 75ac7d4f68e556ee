/**
 * Detection that holds on small sites, at cold start, and when PlaceGuard
 * itself stalls (issue 12). Real broker, real simulator, the collector as
 * its own process where it has to be frozen (SIGSTOP/SIGCONT) or handed a
 * stdout nobody reads; alerts read from its alert book.
 *
 * Most of these scenarios spend their minutes waiting on the wall clock
 * (a warm-up, a freeze, a collector that is down), so those run side by
 * side, each with a fleet, a broker and a collector of its own. The
 * 2,000-device run is the exception: it needs the host's CPU to itself, and
 * runs alone after them.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { closeSync, constants, existsSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { afterAll, beforeAll, describe, it } from 'vitest'
import { loadScenario, runSimulation, type SimulationSummary } from '../../agent-sim/index.ts'
import { EmbeddedStore } from '../../collector/embedded-store.ts'
import { createCollectorService } from '../../app/collector-service.ts'
import { type Alert } from '../../shared/alert-contract.ts'
import { AlertBook } from '../../detection/alert-book.ts'
import { SHIPPED_POLICIES_DIR } from '../../detection/detection.ts'
import { loadPolicySet } from '../../policies/loader.ts'
import type { PolicyOf } from '../../policies/schema.ts'
import { loadConfig } from '../../app/config.ts'
import { createLogger } from '../../shared/logger.ts'
import { connectClient, type RunningBroker, startBroker, waitFor } from '../helpers/broker.ts'
import { type BrokerProcess, startBrokerProcess } from '../helpers/broker-process.ts'
import { createTestFleet, type TestFleet } from '../helpers/fleet.ts'
import { freePort } from '../helpers/free-port.ts'

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** The shipped rate-burst policy: the warm-up the scenario below has to outlast is the one PlaceGuard ships. */
const rateBurst = loadPolicySet(SHIPPED_POLICIES_DIR).policies.map((p) => p.policy).find((p) => p.id === 'rate-burst') as PolicyOf<'rate-burst'>

// Concurrent, so that it runs beside the clean-fleet runs that follow (a fleet and broker of its own).
describe.concurrent('rate-burst at a small site and at cold start (real broker and collector)', () => {
  let fleet: TestFleet
  let broker: RunningBroker
  beforeAll(async () => {
    fleet = await createTestFleet([
      { deviceId: 'energy-s1', kind: 'energy', site: 'tiny' }, { deviceId: 'energy-s2', kind: 'energy', site: 'tiny' },
      { deviceId: 'flood-new', kind: 'flood', site: 'tiny' },
    ])
    // The default budget (5/s, burst 50); a longer hold than the default 30 s, so the broker slows the bursts without cutting them off.
    broker = await startBroker(fleet, { maxThrottleMs: 120_000 })
  })
  afterAll(async () => {
    await broker?.close()
    fleet?.cleanup()
  })

  it('alerts an energy system with one peer that floods, and a device that floods in its first minute', async ({ expect }) => {
    const service = createCollectorService(loadConfig({ env: {}, flags: { dataDir: fleet.dataDir, httpPort: 0 } }), broker.url, createLogger({ level: 'silent' }))
    await service.start()
    const energy = async (id: string) => {
      const client = await connectClient(broker.url, fleet, fleet.device(id), id)
      let seq = 0
      let kwh = 100
      return {
        client,
        publish: () => client.publish(`places/tiny/energy/${id}/telemetry`, JSON.stringify({ ts: Date.now(), seq: seq++, fw: '4.1.0', power_kw: 3, voltage_v: 230, energy_kwh: kwh += 0.01 }), { qos: 1 }),
      }
    }
    const [s1, s2] = [await energy('energy-s1'), await energy('energy-s2')]
    try {
      // Warm: one message a second from each, the site's only two energy systems, for the policy's warm-up
      // (messages and period) and 5 s more. Not warm, energy-s1's burst would be judged on the broker's
      // throttling instead, and the 'own baseline' assertion below fails: this cannot pass by waiting too little.
      const warmSeconds = Math.max(rateBurst.params.warmupMessages, rateBurst.params.warmupPeriod / 1_000) + 5
      for (let i = 0; i < warmSeconds; i++) {
        s1.publish()
        s2.publish()
        await sleep(1_000)
      }
      // A device that floods from its very first message: 400 back to back.
      const flood = await connectClient(broker.url, fleet, fleet.device('flood-new'), 'flood-new')
      for (let seq = 0; seq < 400; seq++) flood.publish('places/tiny/flood/flood-new/telemetry', JSON.stringify({ ts: Date.now(), seq, fw: '3.2.1', level_cm: 80, battery_v: 3.6 }), { qos: 1 })
      // And the warm energy system at the small site: 300 at once, while its peer goes on as before.
      for (let i = 0; i < 300; i++) s1.publish()
      const burst = async (id: string) => (await service.detection.alerts.list({ policy: 'rate-burst', deviceId: id }))[0]
      await waitFor(async () => Boolean((await burst('energy-s1')) && (await burst('flood-new'))), 30_000, 'rate-burst on energy-s1 and flood-new')
          .catch(async (error: Error) => { throw new Error(`${error.message}; alerts: ${JSON.stringify((await service.detection.alerts.list()).map((a) => [a.policy, a.deviceId, a.summary]))}; events: ${broker.events.filter((e) => e.type === 'rate-limited').map((e) => e.deviceId).join(',')}`) })
      expect((await burst('energy-s1'))!.evidence).toMatchObject({ judgedOn: 'own baseline', peers: 2 })
      expect((await burst('energy-s1'))!.summary).toMatch(/judged on its own baseline/)
      expect(['broker throttling', 'ceiling']).toContain((await burst('flood-new'))!.evidence.judgedOn)
      s2.publish()
      expect((await burst('energy-s2'))).toBeUndefined()
      flood.end(true)
    } finally {
      s1.client.end(true)
      s2.client.end(true)
      await service.stop()
    }
  }, 120_000)

  it('a device back from a minute off the network sends the readings it kept: device-silent while away, no rate-burst on its return', async ({ expect }) => {
    // A site of five, each sending every second; one loses its link once warm, for a minute, and keeps
    // taking readings. On its return its client sends all 60 at once (the broker's default budget slows
    // the last ten), stamped when they were taken: counted on arrival, that is 7× its rate, a rate-burst.
    // This run is within two minutes of the collector's start, where every message is placed at its send
    // time (the replay window); later, the engine's own-backlog rule does it (test/policies/engine.test.ts).
    const own = await createTestFleet()
    const ownBroker = await startBroker(own)
    const service = createCollectorService(loadConfig({ env: {}, flags: { dataDir: own.dataDir, httpPort: 0 } }), ownBroker.url, createLogger({ level: 'silent' }))
    await service.start()
    try {
      const warmSeconds = Math.max(rateBurst.params.warmupMessages, rateBurst.params.warmupPeriod / 1_000) + 5
      const scenario = join(own.dataDir, 'outage.yaml')
      writeFileSync(scenario, `name: outage\nincidents:\n  - { policy: device-silent, duration: 60s, at: ${warmSeconds}s, select: { ids: [housing-00001] } }\n`)
      const summary = await runSimulation({
        dataDir: own.dataDir, brokerUrl: ownBroker.url, devices: 5, intervalMs: 1_000, durationMs: (warmSeconds + 60 + 15) * 1_000, seed: 5,
        mix: { flood: 0, energy: 0, housing: 1 }, sites: ['estate'], scenario: loadScenario(scenario),
      })
      expect(summary).toMatchObject({ failed: 0, drops: 1, reconnects: 1 })
      // Every reading it kept reached the store: nothing was lost to the outage.
      await waitFor(async () => (await storedTelemetry(own.dataDir)) >= summary.acked, 30_000, 'every acknowledged message stored')
      const alerts = await service.detection.alerts.list()
      expect(alerts.map((a) => `${a.policy} ${a.deviceId} ${a.status}`)).toEqual(['device-silent housing-00001 resolved'])
      expect(alerts[0]!.evidence.expectedIntervalMs).toBeLessThan(1_500)
    } finally {
      await service.stop()
      await ownBroker.close()
      own.cleanup()
    }
  }, 180_000)
})

/** `placeguard collector` in its own process, on the embedded store; stdout as given (default: read and kept). */
function startCollector (dataDir: string, brokerUrl: string, httpPort: number, stdout: number | 'pipe' = 'pipe'): { child: ChildProcess, logs: string[] } {
  const logs: string[] = []
  const child = spawn(process.execPath, [join(import.meta.dirname, '..', '..', 'bin', 'placeguard.js'), '--data-dir', dataDir, 'collector', '--broker', brokerUrl, '--http-port', String(httpPort), '--http-host', '127.0.0.1'], {
    env: { ...process.env, PLACEGUARD_LOG_LEVEL: 'info' },
    stdio: ['ignore', stdout, 'pipe'],
  })
  child.stdout?.on('data', (chunk: Buffer) => logs.push(chunk.toString()))
  child.stderr!.on('data', (chunk: Buffer) => logs.push(chunk.toString()))
  return { child, logs }
}

/** The collector's warnings and its behind / caught-up lines, for a failure's message: what it said about itself. */
function notableLines (logs: string[]): string {
  return logs.join('').split('\n').filter((line) => /"level":(4|5|6)\d|behind|caught up/.test(line)).slice(0, 40).join('\n')
}

async function stopCollector (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGCONT')
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
  await exited
  clearTimeout(timer)
}

async function alertsIn (dataDir: string): Promise<Alert[]> {
  const path = join(dataDir, 'alerts.db')
  if (!existsSync(path)) return []
  const book = new AlertBook({ path })
  try {
    return (await book.list())
  } finally {
    await book.close()
  }
}

async function storedTelemetry (dataDir: string): Promise<number> {
  const store = new EmbeddedStore({ path: join(dataDir, 'telemetry.db'), retentionMs: 86_400_000 })
  try {
    return store.count('flood') + store.count('energy') + store.count('housing')
  } finally {
    await store.close()
  }
}

/** Telemetry points in the embedded store now, read beside the running collector (read-only, WAL). */
function storedNow (dataDir: string): number {
  try {
    const db = new DatabaseSync(join(dataDir, 'telemetry.db'), { readOnly: true })
    try {
      return (db.prepare(`SELECT COUNT(*) AS count FROM points WHERE measurement IN ('flood', 'energy', 'housing')`).get() as { count: number }).count
    } finally {
      db.close()
    }
  } catch {
    return 0 // not created yet
  }
}

/**
 * Runs a clean fleet against a fresh collector; `during` acts on it mid-run. Alerts as they stood when the fleet
 * stopped. Each run has its own fleet (data directory, CA, devices), broker and collector port, so runs can go
 * side by side, and nothing a previous run left in the collector's session reaches the next.
 */
async function cleanRun (options: { devices: number, intervalMs: number, durationMs: number, stdout?: number, brokerProcess?: boolean, during: (collector: { child: ChildProcess, logs: string[] }, place: { dataDir: string, brokerUrl: string, brokerProcess?: ChildProcess, restartBroker?: (downMs: number) => Promise<void> }) => Promise<void> }): Promise<{ alerts: Alert[], summary: SimulationSummary, stored: number, log: string }> {
  const fleet = await createTestFleet()
  let broker: RunningBroker | undefined
  let own: BrokerProcess | undefined
  let collector: { child: ChildProcess, logs: string[] } | undefined
  try {
    if (options.brokerProcess) own = await startBrokerProcess(fleet, { publishRatePerSec: 0 })
    else broker = await startBroker(fleet, { publishRatePerSec: 0 })
    const dataDir = fleet.dataDir
    const brokerUrl = own?.url ?? broker!.url
    collector = startCollector(dataDir, brokerUrl, await freePort(), options.stdout)
    let alerts: Alert[] = []
    // A broker in its own process has no event list here: the collector's own log says it subscribed.
    if (own) await waitFor(async () => collector!.logs.join('').includes('collector subscribed'), 30_000, 'the collector subscribed')
    else await broker!.waitForEvent((e) => e.type === 'connect' && (e.deviceId ?? '').startsWith('collector'), 30_000)
    let acting: Promise<void> | undefined
    const summary = await runSimulation({
      dataDir, brokerUrl, devices: options.devices, intervalMs: options.intervalMs, durationMs: options.durationMs, seed: 3,
      onPhase: (phase) => {
        // A broker process killed (SIGKILL) and started again on its port after `downMs`, as a supervisor would.
        const restartBroker = async (downMs: number) => {
          own!.child.kill('SIGKILL')
          await sleep(downMs)
          own = await startBrokerProcess(fleet, { publishRatePerSec: 0 }, own!.port)
        }
        if (phase === 'run') acting = options.during(collector!, { dataDir, brokerUrl, brokerProcess: own?.child, restartBroker: own ? restartBroker : undefined })
        if (phase === 'stop') void alertsIn(dataDir).then((listed) => { alerts = listed })
      },
    })
    await acting
    // A collector that fell behind (or was restarted) reads what the broker still holds before it is
    // stopped: wait until the store holds as many messages as the broker acknowledged, or 180 s. Its log's
    // "caught up" line was not enough: a restarted collector may not have said it was behind yet.
    const deadline = Date.now() + 180_000
    while (Date.now() < deadline && storedNow(dataDir) < summary.acked) await sleep(1_000)
    await sleep(1_000)
    await stopCollector(collector.child)
    return { alerts, summary, stored: await storedTelemetry(dataDir), log: notableLines(collector.logs) }
  } finally {
    if (collector) await stopCollector(collector.child)
    await broker?.close()
    await own?.stop()
    fleet.cleanup()
  }
}

describe.concurrent('a clean fleet while the collector stalls (collector process, real broker)', () => {
  it('frozen for 20 s (SIGSTOP): no device alert, one pipeline alert, nothing acknowledged lost', async ({ expect }) => {
    const { alerts, summary, stored } = await cleanRun({
      devices: 300, intervalMs: 1_000, durationMs: 50_000,
      during: async ({ child }) => {
        await sleep(15_000) // learned intervals first
        child.kill('SIGSTOP')
        await sleep(20_000)
        child.kill('SIGCONT')
      },
    })
    const device = alerts.filter((a) => !['pipeline-stalled', 'alert-storm'].includes(a.policy))
    expect(device.map((a) => `${a.policy} ${a.deviceId}: ${a.summary}`).slice(0, 5)).toEqual([])
    const pipeline = alerts.filter((a) => a.policy === 'pipeline-stalled')
    expect(pipeline).toHaveLength(1)
    expect(pipeline[0]).toMatchObject({ deviceId: 'pipeline:collector', status: 'resolved' })
    expect(pipeline[0]!.summary).toMatch(/did not run for 2\d s/)
    expect(stored).toBeGreaterThanOrEqual(summary.acked)
  }, 240_000)

  it('the broker frozen for 20 s (SIGSTOP): no device alert, one pipeline alert, nothing acknowledged lost', async ({ expect }) => {
    // The collector runs on, connected, and hears nothing: its own heartbeat is on time. What tells a frozen
    // broker from a fleet that fell silent is the broker not answering the collector's probe.
    const { alerts, summary, stored, log } = await cleanRun({
      devices: 100, intervalMs: 1_000, durationMs: 50_000, brokerProcess: true,
      during: async (_collector, { brokerProcess }) => {
        await sleep(15_000) // learned intervals first
        brokerProcess!.kill('SIGSTOP')
        await sleep(20_000)
        brokerProcess!.kill('SIGCONT')
      },
    })
    const device = alerts.filter((a) => !['pipeline-stalled', 'alert-storm'].includes(a.policy))
    expect(device.map((a) => `${a.policy} ${a.deviceId}: ${a.summary}`).slice(0, 5), log).toEqual([])
    const pipeline = alerts.filter((a) => a.policy === 'pipeline-stalled')
    expect(pipeline, log).toHaveLength(1)
    expect(pipeline[0]).toMatchObject({ deviceId: 'pipeline:collector', status: 'resolved' })
    expect(pipeline[0]!.summary).toMatch(/broker/)
    expect(stored).toBeGreaterThanOrEqual(summary.acked)
  }, 240_000)

  it('the broker killed and back after 10 s: no device alert while the fleet reconnects, nothing acknowledged lost', async ({ expect }) => {
    // Every device loses the broker too, and backs off (doubling, with jitter) until it is back: some find it
    // again many seconds after it returned. Their silence is PlaceGuard's outage, not theirs.
    const { alerts, summary, stored, log } = await cleanRun({
      devices: 100, intervalMs: 1_000, durationMs: 60_000, brokerProcess: true,
      during: async (_collector, { restartBroker }) => {
        await sleep(15_000) // learned intervals first
        await restartBroker!(10_000)
      },
    })
    const device = alerts.filter((a) => !['pipeline-stalled', 'alert-storm'].includes(a.policy))
    expect(device.map((a) => `${a.policy} ${a.deviceId}: ${a.summary}`).slice(0, 5), `${device.length} device alerts; ${JSON.stringify(summary)}\n${log}`).toEqual([])
    expect(summary.drops).toBe(summary.devices) // every device lost it
    expect(stored).toBeGreaterThanOrEqual(summary.acked)
  }, 300_000)

  it('with its stdout a pipe nobody reads: detection goes on, no device alert, one pipeline alert, nothing acknowledged lost', async ({ expect }) => {
    // A pipe already full: every write the collector makes to stdout finds no room.
    const fifoDir = mkdtempSync(join(tmpdir(), 'placeguard-fifo-'))
    const fifo = join(fifoDir, 'stdout.fifo')
    execFileSync('mkfifo', [fifo])
    const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK)
    const writer = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK)
    try {
      for (;;) writeSync(writer, Buffer.alloc(4096, 'x'))
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') throw error
    }
    try {
      const { alerts, summary, stored } = await cleanRun({ devices: 300, intervalMs: 1_000, durationMs: 30_000, stdout: writer, during: async () => {} })
      const device = alerts.filter((a) => !['pipeline-stalled', 'alert-storm'].includes(a.policy))
      expect(device.map((a) => `${a.policy} ${a.deviceId}: ${a.summary}`).slice(0, 5)).toEqual([])
      expect(alerts.filter((a) => a.policy === 'pipeline-stalled').map((a) => a.deviceId)).toEqual(['pipeline:log'])
      expect(stored).toBeGreaterThanOrEqual(summary.acked)
      expect(summary.acked).toBeGreaterThan(300 * 20)
    } finally {
      closeSync(writer)
      closeSync(reader)
      rmSync(fifoDir, { recursive: true, force: true })
    }
  }, 240_000)

  it('restarted after 60 s down: catches up on the broker backlog without device alerts, nothing acknowledged lost', async ({ expect }) => {
    const { alerts, summary, stored, log } = await cleanRun({
      devices: 200, intervalMs: 1_000, durationMs: 105_000,
      during: async (collector, { dataDir, brokerUrl }) => {
        await sleep(20_000)
        await stopCollector(collector.child)
        await sleep(60_000)
        Object.assign(collector, startCollector(dataDir, brokerUrl, await freePort()))
      },
    })
    // aedes delivers the stored backlog interleaved with live messages, out of order; `replay` (seq going
    // back) is judged elsewhere and is not what this test is about: silence and rates are.
    // (The collector's redelivered in-flight messages, the same seq again, are replay idempotency's matter.)
    const judged = alerts.filter((a) => a.policy !== 'replay' && !a.deviceId.startsWith('storm:replay:'))
    expect(judged.map((a) => `${a.policy} ${a.deviceId}: ${a.summary}`).slice(0, 5), `the restarted collector said:\n${log}`).toEqual([])
    expect(stored).toBeGreaterThanOrEqual(summary.acked)
  }, 300_000)
})

describe('a clean fleet of 2,000 at full speed (collector and broker processes)', () => {
  // 10,000 TLS messages a second is more than an in-process aedes shares a core with 2,000 simulated clients for
  // (its mqemitter recursion overflows the stack): the broker runs as its own process, as it does in production.
  // If the collector falls behind on this 2-core host, that is PlaceGuard's own doing: one pipeline alert may say
  // so (issue 12), but no device is alerted.
  // It runs after the scenarios above, which share this process's event loop and the host's two cores; another
  // test file may run beside it (two at a time), so it asserts a load, not a rate.
  it('2,000 devices at a 200 ms interval for 60 s: no device alert, at most one pipeline alert, nothing acknowledged lost', async ({ expect }) => {
    const { alerts, summary, stored } = await cleanRun({ devices: 2_000, intervalMs: 200, durationMs: 60_000, brokerProcess: true, during: async () => {} })
    const device = alerts.filter((a) => a.policy !== 'pipeline-stalled')
    expect(device.map((a) => `${a.policy} ${a.deviceId}: ${a.summary}`).slice(0, 5)).toEqual([])
    expect(alerts.filter((a) => a.policy === 'pipeline-stalled').length).toBeLessThanOrEqual(1)
    // A real load, whatever the host's share of it: at least 100,000 acknowledged (a sixth of what the fleet
    // offers). With another test file beside it on two cores the fleet got 157,000 through; alone, over 200,000.
    expect(summary.acked).toBeGreaterThan(100_000)
    expect(stored).toBeGreaterThanOrEqual(summary.acked)
  }, 500_000)
})
