/**
 * A clean simulated fleet against `placeguard collector` in its own
 * process, for the runs that show detection holding while PlaceGuard
 * itself stalls, restarts or runs at full speed
 * (test/detection/detection-holds*.test.ts): the collector's process, its
 * alert book and its embedded store, read as a user would.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { runSimulation, type SimulationSummary } from '../../agent-sim/index.ts'
import { EmbeddedStore } from '../../collector/embedded-store.ts'
import { type Alert } from '../../shared/alert-contract.ts'
import { AlertBook } from '../../detection/alert-book.ts'
import { type RunningBroker, startBroker, waitFor } from './broker.ts'
import { type BrokerProcess, startBrokerProcess } from './broker-process.ts'
import { createTestFleet } from './fleet.ts'
import { freePort } from './free-port.ts'

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** `placeguard collector` in its own process, on the embedded store; stdout as given (default: read and kept). */
export function startCollector (dataDir: string, brokerUrl: string, httpPort: number, stdout: number | 'pipe' = 'pipe'): { child: ChildProcess, logs: string[] } {
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

export async function stopCollector (child: ChildProcess): Promise<void> {
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

export async function storedTelemetry (dataDir: string): Promise<number> {
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
export async function cleanRun (options: { devices: number, intervalMs: number, durationMs: number, stdout?: number, brokerProcess?: boolean, during: (collector: { child: ChildProcess, logs: string[] }, place: { dataDir: string, brokerUrl: string, brokerProcess?: ChildProcess, restartBroker?: (downMs: number) => Promise<void> }) => Promise<void> }): Promise<{ alerts: Alert[], summary: SimulationSummary, stored: number, log: string }> {
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
