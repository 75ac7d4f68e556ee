/**
 * The collector's promise, end to end: every message the broker
 * acknowledged to a device is in the store afterwards — across a store
 * outage and a collector killed with SIGKILL. Real broker, real simulator,
 * real victoria-metrics, and the collector as its own process.
 *
 * Each scenario has a fleet, a broker and a store of its own, so each counts
 * only its own messages, and they run side by side: most of their time is
 * spent waiting on an outage or a restart, not computing.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, type ExpectStatic, it } from 'vitest'
import { loadScenario, runSimulation, type SimSnapshot, type SimulationSummary } from '../../agent-sim/index.ts'
import { type RunningBroker, startBroker, waitFor } from '../helpers/broker.ts'
import { startBrokerProcess } from '../helpers/broker-process.ts'
import { freePort } from '../helpers/free-port.ts'
import { createTestFleet, type TestFleet } from '../helpers/fleet.ts'
import { startVictoriaMetrics, type RunningVictoriaMetrics } from '../helpers/victoria-metrics.ts'

/** One scenario's own fleet (data directory, CA, devices), broker in this process and store. */
interface Place { fleet: TestFleet, broker: RunningBroker, store: RunningVictoriaMetrics }

/** Opens a place for `use` and closes it afterwards, whatever `use` did. */
async function inPlace (use: (place: Place) => Promise<void>): Promise<void> {
  const fleet = await createTestFleet()
  let broker: RunningBroker | undefined
  let store: RunningVictoriaMetrics | undefined
  try {
    broker = await startBroker(fleet, { publishRatePerSec: 0 })
    store = await startVictoriaMetrics()
    await use({ fleet, broker, store })
  } finally {
    await store?.stop()
    await broker?.close()
    fleet.cleanup()
  }
}

/** `placeguard collector` as a user runs it, writing to victoria-metrics through the InfluxDB v2 API. */
function startCollector (logs: string[], place: Place, target: RunningVictoriaMetrics = place.store, brokerUrl = place.broker.url): ChildProcess {
  const child = spawn(process.execPath, [join(import.meta.dirname, '..', '..', 'bin', 'placeguard.js'), '--data-dir', place.fleet.dataDir, 'collector', '--broker', brokerUrl], {
    env: { ...process.env, PLACEGUARD_INFLUX_URL: target.url, PLACEGUARD_INFLUX_TOKEN: 'test-token', PLACEGUARD_INFLUX_ORG: 'council', PLACEGUARD_INFLUX_BUCKET: 'telemetry', PLACEGUARD_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  child.stdout!.on('data', (chunk: Buffer) => logs.push(chunk.toString()))
  child.stderr!.on('data', (chunk: Buffer) => logs.push(chunk.toString()))
  return child
}

async function stopCollector (child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null) return
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  child.kill(signal)
  await exited
}

/**
 * The collector process up and subscribed. Its start (Node loading the project's TypeScript, the stores
 * opened, the broker session) took over 15 s on CI's loaded machine with five of these runs side by side.
 */
async function waitForSubscribed (logs: string[]): Promise<void> {
  await waitFor(() => logs.join('').includes('collector subscribed'), 60_000, () => `the collector to subscribe; its log:\n${logs.join('').slice(-2000)}`)
}

/** Unique messages in the store since `sinceMs`: one `<kind>_seq` sample per (device, timestamp). */
async function storedMessages (sinceMs: number, target: RunningVictoriaMetrics): Promise<number> {
  const messages = new Set<string>()
  for (const series of await target.exportSeries('{__name__=~"(flood|energy|housing)_seq"}')) {
    series.timestamps.forEach((timestamp, i) => { if (timestamp >= sinceMs) messages.add(`${series.metric.device} ${timestamp} ${series.values[i]}`) })
  }
  return messages.size
}

/** Per device, the seq values missing between its first and last stored ones: what a failure lost. */
async function seqGaps (sinceMs: number, target: RunningVictoriaMetrics): Promise<string> {
  const gaps: string[] = []
  for (const series of await target.exportSeries('{__name__=~"(flood|energy|housing)_seq"}')) {
    const seqs = series.values.filter((_, i) => series.timestamps[i]! >= sinceMs).sort((a, b) => a - b)
    const missing = seqs.length === 0 ? [] : Array.from({ length: seqs.at(-1)! - seqs[0]! + 1 }, (_, i) => seqs[0]! + i).filter((seq) => !seqs.includes(seq))
    if (missing.length > 0 || seqs[0] !== 0) gaps.push(`${series.metric.device}: first ${seqs[0]}, missing ${missing.length} (${missing.slice(0, 3).join(',')}…)`)
  }
  return gaps.slice(0, 8).join('; ') || 'none'
}

async function expectEverythingStored (expect: ExpectStatic, summary: SimulationSummary, sinceMs: number, logs: string[], target: RunningVictoriaMetrics, notTelemetry = 0): Promise<void> {
  expect(summary.failed).toBe(0)
  expect(summary.acked).toBe(summary.sent)
  const expected = summary.acked - notTelemetry
  let stored = 0
  // Each poll awaited: one left in flight when the test stops its store would reject unhandled.
  await waitFor(async () => {
    stored = await storedMessages(sinceMs, target).catch(() => stored)
    return stored === expected
  }, 60_000, `all ${expected} messages in the store`).catch(async (error: Error) => {
    throw new Error(`${error.message} (stored ${stored}); gaps: ${await seqGaps(sinceMs, target)}; collector log:\n${logs.join('').slice(-3000)}`)
  })
  expect(stored).toBe(expected)
}

describe.concurrent('lossless collection into InfluxDB (victoria-metrics)', () => {
  it('stores every acknowledged message although the store is down for 20 s mid-run', ({ expect }) => inPlace(async (place) => {
    const { fleet, broker, store } = place
    const logs: string[] = []
    const collector = startCollector(logs, place)
    try {
      await waitForSubscribed(logs)
      const since = Date.now()
      let acked = 0
      const simulation = runSimulation({ dataDir: fleet.dataDir, brokerUrl: broker.url, devices: 40, intervalMs: 200, durationMs: 30_000, seed: 3, onAcked: () => { acked++ } })
      // The fleet under way first (its connects take seconds on a loaded machine), then the store goes.
      await waitFor(() => acked >= 200, 60_000, () => `200 acknowledged messages, ${acked} so far`)
      await store.halt()
      await new Promise((resolve) => setTimeout(resolve, 20_000))
      await store.restart()
      const summary = await simulation
      expect(logs.join('')).toMatch(/store write failed, spooling/)
      await expectEverythingStored(expect, summary, since, logs, store)
    } finally {
      await stopCollector(collector)
    }
  }), 150_000)

  it('stores every acknowledged message although the collector is killed with SIGKILL mid-run', ({ expect }) => inPlace(async (place) => {
    const { fleet, broker, store } = place
    const logs: string[] = []
    let collector = startCollector(logs, place)
    try {
      await waitForSubscribed(logs)
      const since = Date.now()
      let acked = 0
      const simulation = runSimulation({ dataDir: fleet.dataDir, brokerUrl: broker.url, devices: 40, intervalMs: 200, durationMs: 15_000, seed: 4, onAcked: () => { acked++ } })
      await waitFor(() => acked >= 200, 60_000, () => `200 acknowledged messages, ${acked} so far`)
      await stopCollector(collector, 'SIGKILL')
      await new Promise((resolve) => setTimeout(resolve, 3_000))
      collector = startCollector(logs, place)
      const summary = await simulation
      await expectEverythingStored(expect, summary, since, logs, store)
    } finally {
      await stopCollector(collector)
    }
  }), 120_000)

  it('stores every acknowledged message although the broker is killed with SIGKILL mid-run', ({ expect }) => inPlace(async (place) => {
    const { fleet, store } = place
    // The broker as `placeguard broker` with its state in <data-dir>/broker.db:
    // what it acknowledged to a device and had not yet handed to the
    // collector must survive the kill (issue 11, defect 6).
    const port = await freePort()
    let brokerProcess = await startBrokerProcess(fleet, { publishRatePerSec: 0 }, port)
    const url = `mqtts://127.0.0.1:${port}`
    const logs: string[] = []
    const collector = startCollector(logs, place, store, url)
    try {
      await waitForSubscribed(logs)
      const since = Date.now()
      // Message by message: every (device, seq) the broker acknowledged. A
      // publish in flight when the broker died was never acknowledged; the
      // simulator counts it as failed, and it need not be stored.
      // Run until stopped, and act on what the simulator has seen, not on the clock: on a loaded machine the
      // fleet's connects alone can outlast a fixed wait (a run killed the broker after 217 acknowledgements).
      const acknowledged = new Set<string>()
      let snapshot: SimSnapshot | undefined
      const stop = new AbortController()
      const simulation = runSimulation({
        dataDir: fleet.dataDir, brokerUrl: url, devices: 40, intervalMs: 200, durationMs: 0, signal: stop.signal, seed: 8,
        onAcked: (deviceId, payload) => acknowledged.add(`${deviceId} ${(JSON.parse(payload) as { seq: number }).seq}`),
        onProgress: (s) => { snapshot = s },
      })
      let ackedBeforeKill = 0
      try {
        await waitFor(() => acknowledged.size > 500, 60_000, () => `500 acknowledged messages, ${acknowledged.size} so far`)
        const killed = new Promise((resolve) => brokerProcess.child.once('exit', resolve))
        brokerProcess.child.kill('SIGKILL')
        await killed
        ackedBeforeKill = acknowledged.size
        await new Promise((resolve) => setTimeout(resolve, 2_000))
        brokerProcess = await startBrokerProcess(fleet, { publishRatePerSec: 0 }, port)
        // Every device back, and the fleet acknowledged again as much as before the kill.
        await waitFor(() => snapshot !== undefined && snapshot.drops > 0 && snapshot.reconnects === snapshot.drops && snapshot.connected === 40 && acknowledged.size > 2 * ackedBeforeKill,
          90_000, () => `the fleet back and publishing, last seen ${JSON.stringify(snapshot)}, ${acknowledged.size} acknowledged`)
      } finally {
        stop.abort()
      }
      const summary = await simulation
      expect(ackedBeforeKill).toBeGreaterThan(500)
      expect(acknowledged.size).toBe(summary.acked)
      const missing = async (): Promise<string[]> => {
        const stored = new Set<string>()
        for (const series of await store.exportSeries('{__name__=~"(flood|energy|housing)_seq"}')) {
          series.timestamps.forEach((timestamp, i) => { if (timestamp >= since) stored.add(`${series.metric.device} ${series.values[i]}`) })
        }
        return [...acknowledged].filter((message) => !stored.has(message))
      }
      let lost: string[] = [...acknowledged]
      await waitFor(async () => {
        lost = await missing().catch(() => lost)
        return lost.length === 0
      }, 60_000, 'every acknowledged message in the store').catch((error: Error) => {
        throw new Error(`${error.message}: ${lost.length} missing (${lost.slice(0, 5).join(', ')}); collector log:\n${logs.join('').slice(-3000)}`)
      })
    } finally {
      await stopCollector(collector)
      await brokerProcess.stop()
    }
  }), 150_000)

  it('keeps everything while the store refuses the token (401), says so, and delivers it all once fixed', ({ expect }) => inPlace(async (place) => {
    const { fleet, broker } = place
    const dataDir = mkdtempSync(join(tmpdir(), 'placeguard-vm-auth-'))
    let guarded = await startVictoriaMetrics({ dataDir, extraArgs: ['-httpAuth.username=placeguard', '-httpAuth.password=right'] })
    const logs: string[] = []
    const collector = startCollector(logs, place, guarded)
    try {
      await waitForSubscribed(logs)
      const since = Date.now()
      const summary = await runSimulation({ dataDir: fleet.dataDir, brokerUrl: broker.url, devices: 20, intervalMs: 300, durationMs: 5_000, seed: 5 })
      await waitFor(() => logs.join('').includes('PLACEGUARD_INFLUX_TOKEN'), 10_000, 'a log line naming the token variable')
      expect(logs.join('')).not.toContain('test-token')
      // The operator fixes the store (here: drops its auth); the spool drains into it.
      await guarded.halt()
      guarded = await startVictoriaMetrics({ dataDir, port: guarded.port })
      await expectEverythingStored(expect, summary, since, logs, guarded)
    } finally {
      await stopCollector(collector)
      await guarded.stop()
      rmSync(dataDir, { recursive: true, force: true })
    }
  }), 120_000)

  it('stores invalid payloads as payload-invalid events, and the same devices\' valid telemetry as usual', ({ expect }) => inPlace(async (place) => {
    const { fleet, broker, store } = place
    const logs: string[] = []
    const collector = startCollector(logs, place)
    const scenario = join(fleet.dataDir, 'invalid.yaml')
    writeFileSync(scenario, [
      'name: invalid payloads',
      'incidents:',
      '  - { policy: payload-invalid, mode: not-json, count: 2, select: { ids: [flood-00001] }, at: 1s }',
      '  - { policy: payload-invalid, mode: wrong-type, count: 2, select: { ids: [energy-00001] }, at: 1s }',
      '  - { policy: payload-invalid, mode: missing-field, count: 2, select: { ids: [housing-00001] }, at: 1s }',
    ].join('\n'))
    try {
      await waitForSubscribed(logs)
      const since = Date.now()
      const ackedBy = new Map<string, number>()
      const summary = await runSimulation({
        dataDir: fleet.dataDir, brokerUrl: broker.url, devices: 12, intervalMs: 250, durationMs: 4_000, seed: 6, scenario: loadScenario(scenario),
        onAcked: (deviceId) => ackedBy.set(deviceId, (ackedBy.get(deviceId) ?? 0) + 1),
      })
      await expectEverythingStored(expect, summary, since, logs, store, 6)
      const events = (await store.exportSeries('{__name__="security_event_count",type="payload-invalid"}'))
        .map((series) => [series.metric.device, series.timestamps.filter((t) => t >= since).length])
      expect(Object.fromEntries(events)).toEqual({ 'flood-00001': 2, 'energy-00001': 2, 'housing-00001': 2 })
      for (const device of ['flood-00001', 'energy-00001', 'housing-00001']) {
        const valid = await store.exportSeries(`{__name__=~"(flood|energy|housing)_seq",device="${device}"}`)
        // Each of its acknowledged messages but the two invalid ones: however many a loaded machine let it send.
        expect(ackedBy.get(device)).toBeGreaterThan(2)
        expect(valid[0]!.timestamps.filter((t) => t >= since).length).toBe(ackedBy.get(device)! - 2)
      }
    } finally {
      await stopCollector(collector)
    }
  }), 90_000)
})
