/**
 * Detection's learned device state travels with its partition, against a
 * real redis-server: collector services in cluster mode (as `placeguard
 * collector --redis-url` runs them, each with its own data directory and
 * alert book) share the partitions while a fleet reports every second.
 * A collector joins, one leaves gracefully, one is killed with SIGKILL: the
 * clean devices open no alert anywhere (no silence on the collector that
 * handed them over, no silence, replay, downgrade or burst on the one that
 * took them), and a device that sends an old seq or an older firmware after
 * the move is alerted — only its carried history can tell. A stale holder's
 * snapshot write is refused by the fence.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createCollectorService, type CollectorService } from '../../app/collector-service.ts'
import { loadConfig } from '../../app/config.ts'
import { clusterKeys, connectRedis, DetectionSnapshots, partitionOf, type Redis, StreamHandoff } from '../../cluster/index.ts'
import { LEASE_SCRIPTS } from '../../cluster/partition-leases.ts'
import type { Alert } from '../../shared/alert-contract.ts'
import { createLogger } from '../../shared/logger.ts'
import { startRedis, type RunningRedis } from '../helpers/redis-server.ts'

const logger = createLogger({ level: 'silent' })
const PARTITIONS = 8
const DEVICES = Array.from({ length: 24 }, (_, i) => `flood-${String(i + 1).padStart(2, '0')}`)
const keys = clusterKeys()
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
let server: RunningRedis
let redis: Redis
let dir: string
const children: ChildProcess[] = []

beforeAll(async () => {
  server = await startRedis()
  redis = connectRedis({ url: server.url, name: 'test', logger })
  dir = mkdtempSync(join(tmpdir(), 'pg-detection-snapshots-'))
})
afterAll(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  redis?.disconnect()
  await server?.stop()
  rmSync(dir, { recursive: true, force: true })
})

async function until (condition: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!await condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(100)
  }
}

function collectorConfig (name: string) {
  const dataDir = join(dir, name)
  mkdirSync(dataDir, { recursive: true })
  return { dataDir, config: loadConfig({ env: {}, flags: { dataDir, redisUrl: server.url, cluster: { partitions: PARTITIONS, collectorName: name } } }) }
}

/** A collector service in this process (its alert book readable). */
function collector (name: string): CollectorService {
  return createCollectorService(collectorConfig(name).config, '', logger)
}

/** A collector service as a process of its own, to be killed; resolves once it has started. */
async function collectorProcess (name: string, tuning: { snapshotEveryMs?: number } = {}): Promise<ChildProcess> {
  const { dataDir } = collectorConfig(name)
  const child = spawn(process.execPath, [join(import.meta.dirname, '..', 'helpers', 'cluster-collector-process.ts'),
    JSON.stringify({ url: server.url, dataDir, name, partitions: PARTITIONS, ...tuning })], { stdio: ['ignore', 'pipe', 'inherit'] })
  children.push(child)
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => { if (chunk.toString().includes('"started"')) resolve() })
    child.once('exit', (code) => reject(new Error(`collector process exited with ${code}`)))
  })
  return child
}

/** Partition → the collector holding its lease (null: none), as an operator reads it in Redis. */
async function owners (): Promise<Array<string | null>> {
  const pipeline = redis.pipeline()
  for (let p = 0; p < PARTITIONS; p++) pipeline.hget(keys.lease(p), 'owner')
  return (await pipeline.exec())!.map(([, owner]) => owner as string | null)
}
const held = async (name: string) => (await owners()).flatMap((owner, partition) => owner === name ? [partition] : [])
const devicesIn = (partitions: number[]) => DEVICES.filter((id) => partitions.includes(partitionOf(id, PARTITIONS)))

/** The fleet: each device one message a second, through the streams as broker nodes append them. */
class Fleet {
  readonly #handoff = new StreamHandoff({ redis, keys, partitions: PARTITIONS })
  readonly #seq = new Map(DEVICES.map((id) => [id, 0]))
  /** Devices that send nothing for now (as if offline). */
  readonly paused = new Set<string>()
  #timer: NodeJS.Timeout | undefined
  #sending: Promise<void> = Promise.resolve()

  start (): void {
    this.#timer = setInterval(() => {
      this.#sending = this.#sending.then(async () => {
        for (const id of DEVICES) {
          if (!this.paused.has(id)) await this.send(id, this.advance(id))
        }
      })
    }, 1_000)
  }

  async stop (): Promise<void> {
    clearInterval(this.#timer)
    await this.#sending
  }

  /** The device's next seq. */
  advance (id: string): number {
    const seq = this.#seq.get(id)! + 1
    this.#seq.set(id, seq)
    return seq
  }

  async send (id: string, seq: number, fw = '3.2.1'): Promise<void> {
    const now = Date.now()
    await this.#handoff.append({
      partitionKey: id, topic: `places/riverside/flood/${id}/telemetry`, node: 'node-1', receivedAtMs: now,
      payload: Buffer.from(JSON.stringify({ ts: now, seq, fw, level_cm: 40 + seq % 5, battery_v: 3.6 })),
    })
  }
}

const deviceAlerts = async (service: CollectorService): Promise<string[]> =>
  (await service.detection.alerts.list()).filter((alert: Alert) => DEVICES.includes(alert.deviceId)).map((alert) => `${alert.policy} ${alert.deviceId} (${alert.status}): ${alert.summary}`)

describe('detection state travels with its partition', () => {
  it('across a join, a graceful leave and a SIGKILL: no alert for the clean devices, history carried', async () => {
    const fleet = new Fleet()
    const a = collector('collector-a')
    const b = collector('collector-b')
    /** Right after a move: one paused device sends an old seq, the other an older firmware; then both go on as before. */
    const attack = async (replayer: string, downgrader: string) => {
      await fleet.send(replayer, 2)
      await fleet.send(downgrader, fleet.advance(downgrader), '3.1.0')
      fleet.paused.delete(replayer)
      fleet.paused.delete(downgrader)
    }
    await a.start()
    fleet.start()
    try {
      // B joins: A hands B its share, with what it learned of those devices, and forgets them.
      await sleep(2_000)
      await b.start()
      await until(async () => (await held('collector-b')).length === PARTITIONS / 2, 10_000, 'a 4/4 split')
      const ofB = await held('collector-b')
      // Warm-up: 20 s of messages make the devices' rate baselines count (rate-burst's warmupPeriod).
      await sleep(20_000)
      // Each held partition's state is in Redis under its holder's lease token.
      const [partition] = ofB
      const saved = await redis.hgetall(keys.detection(partition!))
      expect(saved.token).toBe(await redis.hget(keys.lease(partition!), 'token'))
      const state = JSON.parse(saved.state!) as { version: number, devices: Array<{ deviceId: string, messages: number }> }
      expect(state.version).toBe(2)
      expect(state.devices.map((d) => d.deviceId).sort()).toEqual(devicesIn([partition!]))
      expect(Math.min(...state.devices.map((d) => d.messages))).toBeGreaterThan(15)
      expect(await deviceAlerts(b)).toEqual([])

      // Two of B's devices go quiet for a moment: their first message after the move is the attack, which
      // only the history learned before the move can expose (A learns anew from any message it hears itself).
      const [replayedOnB, downgradedOnB] = devicesIn(ofB)
      fleet.paused.add(replayedOnB!).add(downgradedOnB!)
      await sleep(1_500)

      // B leaves gracefully: its state saved at release, A takes its partitions at its next round.
      await b.stop()
      const left = Date.now()
      await until(async () => (await held('collector-a')).length === PARTITIONS, 10_000, 'A holding all 8')
      const gracefulTakeoverMs = Date.now() - left
      await attack(replayedOnB!, downgradedOnB!)
      await sleep(7_000) // a detection tick (every 5 s) or more after the move
      expect((await deviceAlerts(a)).sort()).toEqual([
        expect.stringMatching(new RegExp(`^firmware-downgrade ${downgradedOnB} \\(open\\): firmware went back from 3.2.1 to 3.1.0`)),
        expect.stringMatching(new RegExp(`^replay ${replayedOnB} \\(open\\): seq went back from \\d+ to 2`)),
      ])

      // C joins as a process of its own, takes half from A (with their state), and writes its own snapshots.
      const c = await collectorProcess('collector-c')
      await until(async () => (await held('collector-c')).length === PARTITIONS / 2, 10_000, 'C holding its half')
      const ofC = await held('collector-c')
      const cToken = await redis.hget(keys.lease(ofC[0]!), 'token')
      await until(async () => await redis.hget(keys.detection(ofC[0]!), 'token') === cToken, 10_000, 'C\'s first snapshot')
      await sleep(3_000)
      // Other devices than B's two (C's half may include B's old partitions): each alert here must be new.
      const [replayedOnC, downgradedOnC] = devicesIn(ofC).filter((id) => id !== replayedOnB && id !== downgradedOnB)
      fleet.paused.add(replayedOnC!).add(downgradedOnC!)
      await sleep(1_500)

      // C is killed: no release, no last snapshot (A gets one up to 5 s old). A takes its partitions once the leases expire.
      c.kill('SIGKILL')
      const killed = Date.now()
      await until(async () => (await held('collector-a')).length === PARTITIONS, 20_000, 'A holding all 8 again')
      const killTakeoverMs = Date.now() - killed
      await attack(replayedOnC!, downgradedOnC!)
      await sleep(7_000)
      expect((await deviceAlerts(a)).filter((line) => !line.includes(` ${replayedOnB} `) && !line.includes(` ${downgradedOnB} `)).sort()).toEqual([
        expect.stringMatching(new RegExp(`^firmware-downgrade ${downgradedOnC} \\(open\\)`)),
        expect.stringMatching(new RegExp(`^replay ${replayedOnC} \\(open\\)`)),
      ])
      expect(gracefulTakeoverMs).toBeLessThan(5_000)
      expect(killTakeoverMs).toBeLessThan(15_000)
    } finally {
      await fleet.stop()
      await a.stop()
    }
  }, 120_000)

  it('a device first heard after its holder\'s last snapshot keeps its history when the holder is killed', async () => {
    // The holder saves no periodic snapshot in this test: only the changes appended with each batch can carry the device.
    const fleet = new Fleet()
    const holder = await collectorProcess('collector-v', { snapshotEveryMs: 600_000 })
    await until(async () => (await held('collector-v')).length === PARTITIONS, 20_000, 'V holding all 8')
    const device = 'flood-new'
    const partition = partitionOf(device, PARTITIONS)
    for (const seq of [1, 2, 3]) await fleet.send(device, seq)
    // What V learned of the device is in Redis once the batch is acknowledged: appended to the partition's changes
    // (V saves no periodic snapshot here; a snapshot, were one saved, would hold it too).
    const savedSeq = async (): Promise<number | undefined> => {
      const snapshot = await redis.hget(keys.detection(partition), 'state')
      const views = [...snapshot ? [snapshot] : [], ...await redis.lrange(keys.detectionChanges(partition), 0, -1)]
        .map((json) => JSON.parse(json) as { devices: Array<{ deviceId: string, previous: { seq: number } | null }> })
      return views.flatMap((view) => view.devices).filter((d) => d.deviceId === device).at(-1)?.previous?.seq
    }
    await until(async () => await savedSeq() === 3, 10_000, 'V\'s view of the device, up to seq 3, saved in Redis')
    // …and the batch acknowledged (the XACK follows the append): the new holder will not read these messages again.
    await until(async () => Number((await redis.xpending(keys.stream(partition), 'collectors') as [number])[0]) === 0, 10_000, 'the batch acknowledged')

    holder.kill('SIGKILL')
    const w = collector('collector-w')
    await w.start()
    try {
      await until(async () => (await held('collector-w')).length === PARTITIONS, 20_000, 'W holding all 8 once V\'s leases ran out')
      // Its next message carries an older firmware: only the history V acknowledged can tell.
      await fleet.send(device, 4, '3.1.0')
      await until(async () => (await w.detection.alerts.list()).some((alert: Alert) => alert.deviceId === device), 10_000, 'an alert on the device')
      expect((await w.detection.alerts.list()).filter((alert: Alert) => alert.deviceId === device).map((alert) => `${alert.policy}: ${alert.summary}`))
        .toEqual([expect.stringMatching(/^firmware-downgrade: firmware went back from 3\.2\.1 to 3\.1\.0/)])
    } finally {
      await w.stop()
    }
  }, 60_000)

  it('refuses a snapshot written by a stale holder, and one under a smaller token than the stored one', async () => {
    // Keys of their own: the group above left its snapshots under the default prefix.
    const keys = clusterKeys('fence')
    const snapshots = new DetectionSnapshots({ redis, keys })
    const partition = 5
    const take = async (member: string) => Number(await redis.eval(LEASE_SCRIPTS.ACQUIRE, 2, keys.lease(partition), keys.leaseToken(partition), member, 10_000))
    const old = await take('collector-x')
    expect(await snapshots.save(partition, old, '{"by":"x"}')).toBe(true)
    // X's lease ran out while it was paused; Y took the partition and saved its own view.
    await redis.del(keys.lease(partition))
    const fresh = await take('collector-y')
    expect(fresh).toBeGreaterThan(old)
    expect(await snapshots.save(partition, fresh, '{"by":"y"}')).toBe(true)
    // X comes back believing it still holds the partition: its write is refused, Y's snapshot stays.
    expect(await snapshots.save(partition, old, '{"by":"x, late"}')).toBe(false)
    expect((await snapshots.load([partition])).get(partition)!.snapshot).toMatchObject({ token: fresh, state: '{"by":"y"}' })
    // Nobody holds it: nobody writes.
    await redis.del(keys.lease(partition))
    expect(await snapshots.save(partition, fresh, '{"by":"y, released"}')).toBe(false)
    // A lease forged back to an older token still cannot replace a newer snapshot.
    await redis.hset(keys.lease(partition), 'owner', 'collector-x', 'token', String(old))
    expect(await snapshots.save(partition, old, '{"by":"x, forged"}')).toBe(false)
    expect((await snapshots.load([partition, 6])).get(partition)!.snapshot!.state).toBe('{"by":"y"}')
    expect((await snapshots.load([6])).size).toBe(0)

    // Changes between snapshots: appended under the same fence, applied after the snapshot, dropped by the next one.
    const other = 7
    const token = Number(await redis.eval(LEASE_SCRIPTS.ACQUIRE, 2, keys.lease(other), keys.leaseToken(other), 'collector-y', 10_000))
    expect(await snapshots.append(other, token, '{"change":1}')).toBe(true)
    expect(await snapshots.load([other])).toEqual(new Map([[other, { snapshot: undefined, changes: ['{"change":1}'] }]]))
    expect(await snapshots.save(other, token, '{"whole":1}')).toBe(true)
    expect(await snapshots.append(other, token, '{"change":2}')).toBe(true)
    expect(await snapshots.append(other, token - 1, '{"change":"stale"}')).toBe(false)
    expect((await snapshots.load([other])).get(other)).toMatchObject({ snapshot: { token, state: '{"whole":1}' }, changes: ['{"change":2}'] })
    expect(await snapshots.save(other, token, '{"whole":2}')).toBe(true)
    expect((await snapshots.load([other])).get(other)).toMatchObject({ snapshot: { state: '{"whole":2}' }, changes: [] })
    await redis.del(keys.lease(other))
    expect(await snapshots.append(other, token, '{"change":"released"}')).toBe(false)
  })
})
