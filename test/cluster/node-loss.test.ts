/**
 * The node-loss bar of the cluster, on real parts: three broker nodes as
 * processes on one redis-server behind HAProxy (TCP mode), a collector in
 * cluster mode reading the streams into the embedded store, and 500
 * simulated devices given only HAProxy's URL. One node is killed with
 * SIGKILL mid-run: its devices come back through HAProxy to the survivors,
 * and every message a device had acknowledged is in the store exactly once
 * by (device, seq).
 */
import { DatabaseSync } from 'node:sqlite'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runSimulation, type SimSnapshot } from '../../agent-sim/index.ts'
import { type CollectorService, createCollectorService } from '../../app/collector-service.ts'
import { loadConfig } from '../../app/config.ts'
import { createLogger } from '../../shared/logger.ts'
import { waitFor } from '../helpers/broker.ts'
import { startClusterNode, type ClusterNodeProcess } from '../helpers/cluster-node.ts'
import { createTestFleet, type TestFleet } from '../helpers/fleet.ts'
import { startHaproxy, type RunningHaproxy } from '../helpers/haproxy.ts'
import { startRedis, type RunningRedis } from '../helpers/redis-server.ts'

const DEVICES = 500

let redis: RunningRedis
let fleet: TestFleet
let lb: RunningHaproxy
let service: CollectorService
const nodes: ClusterNodeProcess[] = []

beforeAll(async () => {
  redis = await startRedis()
  fleet = await createTestFleet()
  // A node serves a few hundred devices each: the per-address handshake cap counts HAProxy's one address (docs/deploy.md).
  for (const id of ['node-1', 'node-2', 'node-3']) nodes.push(await startClusterNode(fleet, redis.url, id, { limits: { maxHandshakesPerAddress: 1_000 } }))
  lb = await startHaproxy({ backends: nodes.map((node) => ({ name: node.nodeId, port: node.port })) })
  service = createCollectorService(loadConfig({ env: {}, flags: { dataDir: fleet.dataDir, redisUrl: redis.url } }), '', createLogger({ level: 'silent' }))
  await service.start()
}, 120_000)
afterAll(async () => {
  await service?.stop()
  await lb?.stop()
  for (const node of nodes) await node.stop()
  fleet?.cleanup()
  await redis?.stop()
})

describe('a node killed during a 500-device run', () => {
  it('loses no acknowledged message: each (device, seq) in the store exactly once, the devices back on the survivors', async () => {
    const acked = new Set<string>()
    let snapshot: SimSnapshot | undefined
    // Runs until the devices of the killed node are back and publishing: on a loaded machine that can outlast any fixed run.
    const stop = new AbortController()
    const run = runSimulation({
      dataDir: fleet.dataDir, brokerUrl: lb.url, devices: DEVICES, intervalMs: 2_000, durationMs: 0, signal: stop.signal, seed: 14,
      mix: { flood: 200, energy: 100, housing: 200 },
      onProgress: (s) => { snapshot = s },
      onAcked: (deviceId, payload) => { acked.add(`${deviceId}:${(JSON.parse(payload) as { seq: number }).seq}`) },
    })
    let summary: Awaited<typeof run>
    try {
      await waitFor(() => snapshot?.connected === DEVICES && acked.size > DEVICES, 90_000, 'the fleet connected and publishing')
      await nodes[0]!.kill()
      await waitFor(() => snapshot !== undefined && snapshot.drops > 0 && snapshot.reconnects === snapshot.drops && snapshot.connected === DEVICES, 120_000,
        () => `the dropped devices back, last seen ${JSON.stringify(snapshot)}`)
      // Then a round of messages from every device, through the survivors.
      const ackedWhenBack = snapshot!.acked
      await waitFor(() => snapshot!.acked >= ackedWhenBack + DEVICES, 60_000, () => `a round of messages after the move, last seen ${JSON.stringify(snapshot)}`)
    } finally {
      stop.abort()
      summary = await run
    }
    expect(summary.drops).toBeGreaterThan(0)
    expect(summary.dropsNotReconnected).toBe(0)

    // Every acknowledged message reaches the store through the streams.
    const db = new DatabaseSync(join(fleet.dataDir, 'telemetry.db'), { readOnly: true })
    const stored = (): Array<{ device: string, seq: number, copies: number }> => db.prepare(
      'SELECT device, json_extract(fields, \'$.seq\') AS seq, COUNT(*) AS copies FROM points WHERE measurement IN (\'flood\', \'energy\', \'housing\') GROUP BY device, seq',
    ).all() as Array<{ device: string, seq: number, copies: number }>
    await waitFor(() => stored().length >= acked.size, 60_000, `${acked.size} acknowledged messages in the store`)
      .catch((error: Error) => { throw new Error(`${error.message}: ${stored().length} stored`) })
    const rows = stored()
    db.close()
    const keys = new Set(rows.map((row) => `${row.device}:${row.seq}`))
    const missing = [...acked].filter((key) => !keys.has(key))
    expect(missing).toEqual([])
    expect(rows.filter((row) => row.copies !== 1)).toEqual([])
    console.error(`node loss: ${acked.size} acknowledged, ${rows.length} stored, ${summary.drops} drops, back within p50 ${summary.timeToReconnectP50Ms} ms / max ${summary.timeToReconnectMaxMs} ms`)
  }, 300_000)
})
