/**
 * Suppliers in cluster mode (issue 17): two broker nodes as real processes
 * on one real redis-server, each on a copy of pki/ without the CA key or
 * any use of an inventory. `placeguard pki issue --role supplier`, run where
 * the CA key is, sends the grant through Redis; Debian's mosquitto clients
 * are the supplier and the device. Inside its window the supplier commands
 * a device through node A and the command reaches the device on node B;
 * once the grant is issued again with its window closed, node B refuses
 * the supplier (CONNACK 5, `supplier-outside-window` from node-2) without
 * a restart. A node told of no grant refuses the supplier: fail closed.
 */
import { execFile } from 'node:child_process'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { clusterKeys, connectRedis, type Redis } from '../../cluster/index.ts'
import { createLogger } from '../../shared/logger.ts'
import { SECURITY_EVENTS_PREFIX } from '../../shared/topics.ts'
import { waitFor } from '../helpers/broker.ts'
import { startClusterNode, type ClusterNodeProcess } from '../helpers/cluster-node.ts'
import { createTestFleet, type TestFleet } from '../helpers/fleet.ts'
import { mosquittoPub, mosquittoSub, type Subscriber } from '../helpers/mosquitto-clients.ts'
import { startRedis, type RunningRedis } from '../helpers/redis-server.ts'

const HOUR_MS = 3_600_000
const FLOOD_CMD = 'places/riverside/flood/flood-1/cmd'
const keys = clusterKeys()

let redis: RunningRedis
let fleet: TestFleet
let client: Redis
let nodeA: ClusterNodeProcess
let nodeB: ClusterNodeProcess
let flood: Subscriber

beforeAll(async () => {
  redis = await startRedis()
  fleet = await createTestFleet([{ deviceId: 'flood-1', kind: 'flood', site: 'riverside' }])
  nodeA = await startClusterNode(fleet, redis.url, 'node-1')
  nodeB = await startClusterNode(fleet, redis.url, 'node-2')
  client = connectRedis({ url: redis.url, name: 'test', logger: createLogger({ level: 'silent' }) })
  // The device reads its commands on node B; a command published on node A reaches it through Redis.
  flood = mosquittoSub(nodeB.port, { cafile: fleet.paths.caCert, ...fleet.device('flood-1') }, 'flood-1', [FLOOD_CMD])
  await flood.ready
}, 120_000)
afterAll(async () => {
  flood?.stop()
  await nodeA?.stop()
  await nodeB?.stop()
  client?.disconnect()
  fleet?.cleanup()
  await redis?.stop()
})

/** `placeguard` where the CA key is, with the cluster's Redis configured. */
function placeguard (...args: string[]): Promise<{ status: number, stdout: string, stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['bin/placeguard.js', '--data-dir', fleet.dataDir, ...args], { encoding: 'utf8', env: { ...process.env, PLACEGUARD_REDIS_URL: redis.url } },
      (error, stdout, stderr) => resolve({ status: error ? Number(error.code ?? 1) : 0, stdout, stderr }))
  })
}

function issueSupplier (fromMs: number, untilMs: number) {
  return placeguard('pki', 'issue', 'acme-pumps', '--role', 'supplier', '--kinds', 'flood', '--sites', 'riverside',
    '--windows', JSON.stringify([{ from: new Date(fromMs).toISOString(), until: new Date(untilMs).toISOString() }]))
}

function command (node: ClusterNodeProcess, text: string) {
  return mosquittoPub(node.port, { cafile: fleet.paths.caCert, ...fleet.device('acme-pumps') }, 'acme-pumps', FLOOD_CMD, text)
}

/** The nodes' security events of one type, as the collectors read them from the streams. */
async function streamEvents (type: string): Promise<Array<Record<string, unknown>>> {
  const events: Array<Record<string, unknown>> = []
  for (let p = 0; p < 16; p++) {
    for (const [, fields] of await client.xrange(keys.stream(p), '-', '+')) {
      const map = new Map<string, string>()
      for (let i = 0; i < fields.length; i += 2) map.set(fields[i]!, fields[i + 1]!)
      if (map.get('t') === `${SECURITY_EVENTS_PREFIX}${type}`) events.push(JSON.parse(map.get('p')!))
    }
  }
  return events
}

describe('a supplier on a cluster of broker nodes', () => {
  it('is refused by a node the cluster has sent no grant for, and commands a device through node A once its grant is sent, reaching the device on node B', async () => {
    const now = Date.now()
    // Issued without the cluster, as before a node knew of it: the nodes have no inventory to read it from.
    await fleet.pki.issueSupplier({ supplierId: 'acme-pumps', kinds: ['flood'], sites: ['riverside'], windows: [{ from: new Date(now - HOUR_MS).toISOString(), until: new Date(now + HOUR_MS).toISOString() }] })
    expect((await command(nodeA, '{"n":0}')).code).not.toBe(0)
    await waitFor(async () => (await streamEvents('auth-failed')).some((e) => e.deviceId === 'acme-pumps' && e.node === 'node-1' && e.code === 'SUPPLIER_NO_GRANT'), 10_000, 'node-1 refusing a supplier with no grant')
    expect(flood.lines).toEqual([])

    // `pki crl` resends what the nodes follow: the CRL and the suppliers' grants.
    const resent = await placeguard('pki', 'crl')
    expect(resent.stderr).toBe('')
    expect(resent.stdout).toMatch(/suppliers' grants sent to the cluster \(2 listening connections\)/)
    expect(JSON.parse((await client.hget(keys.suppliers, 'acme-pumps'))!)).toMatchObject({ kinds: ['flood'], sites: ['riverside'] })
    // Each node reads the grant on the announcement (at worst at its next 2 s read): a few tries at most.
    await waitFor(async () => (await command(nodeA, '{"n":1}')).code === 0, 10_000, 'node-1 admitting the supplier')
    await waitFor(() => flood.lines.includes(`${FLOOD_CMD} {"n":1}`), 10_000, 'the command at flood-1 on node-2')
    // The event goes to the streams on its own path, not behind the command: it may land after it.
    let sent: Array<Record<string, unknown>> = []
    await waitFor(async () => (sent = (await streamEvents('supplier-command')).filter((e) => e.node === 'node-1')).length > 0, 10_000, 'node-1\'s supplier-command event in the streams')
    expect(sent[0]).toMatchObject({ deviceId: 'acme-pumps', topic: FLOOD_CMD, details: { targetDeviceId: 'flood-1', commandId: expect.any(String) } })
  }, 60_000)

  it('is refused on node B once its grant is issued again with the window closed, without a restart', async () => {
    const revoked = await placeguard('pki', 'revoke', 'acme-pumps')
    expect(revoked.stdout).toMatch(/suppliers' grants sent to the cluster/)
    expect(await client.hexists(keys.suppliers, 'acme-pumps')).toBe(0)
    const now = Date.now()
    const issued = await issueSupplier(now - 3 * HOUR_MS, now - 2 * HOUR_MS)
    expect(issued.stderr).toBe('')
    expect(issued.stdout).toMatch(/suppliers' grants sent to the cluster \(2 listening connections\)/)
    // The new certificate is valid; node B refuses it for its window, once it has read the changed grant.
    await waitFor(async () => (await command(nodeB, '{"n":2}')).code !== 0 &&
      (await streamEvents('supplier-outside-window')).some((e) => e.node === 'node-2' && e.deviceId === 'acme-pumps'), 10_000, 'node-2 refusing the supplier outside its window')
    const [outside] = (await streamEvents('supplier-outside-window')).filter((e) => e.node === 'node-2')
    expect(outside).toMatchObject({ deviceId: 'acme-pumps', details: { role: 'supplier', phase: 'connect' } })
    expect((await command(nodeA, '{"n":3}')).code).not.toBe(0)
    expect(flood.lines).not.toContain(`${FLOOD_CMD} {"n":3}`)
  }, 60_000)
})
