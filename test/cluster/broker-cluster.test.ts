/**
 * Three broker nodes as real processes on one real redis-server, each on a
 * copy of pki/ without the CA key; mosquitto's clients and mqtt.js as
 * devices. What a city needs of a cluster: a device's telemetry is in the
 * stream when its PUBACK arrives; revocation and quarantine, issued once,
 * hold on every node within 10 s; a clone across nodes is caught with both
 * nodes named; a collector's persistent session survives the kill -9 of
 * the node that held it; a dead node shows as dead.
 */
import { execFile } from 'node:child_process'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type mqtt from 'mqtt';
import { type MqttClient } from 'mqtt'
import { clusterKeys, connectRedis, DEFAULT_PARTITIONS, partitionOf, type Redis } from '../../cluster/index.ts'
import { lorawanUplinkTopic } from '../../shared/lorawan.ts'
import { createLogger } from '../../shared/logger.ts'
import { SECURITY_EVENTS_PREFIX } from '../../shared/topics.ts'
import { collectorFiles, connectClient, waitFor } from '../helpers/broker.ts'
import { NODE_METRICS_TOKEN, startClusterNode, type ClusterNodeProcess } from '../helpers/cluster-node.ts'
import { createTestFleet, type TestFleet } from '../helpers/fleet.ts'
import { mosquittoSub } from '../helpers/mosquitto-clients.ts'
import { startRedis, type RunningRedis } from '../helpers/redis-server.ts'

let redis: RunningRedis
let fleet: TestFleet
let client: Redis
const nodes: ClusterNodeProcess[] = []
const devices: MqttClient[] = []
const keys = clusterKeys()
const DEVICES = Array.from({ length: 6 }, (_, i) => `flood-0000${i + 1}`)
const topicOf = (id: string) => `places/riverside/flood/${id}/telemetry`

beforeAll(async () => {
  redis = await startRedis()
  fleet = await createTestFleet(DEVICES.map((deviceId) => ({ deviceId, kind: 'flood', site: 'riverside' })))
  await fleet.pki.issueIntegration({ integrationId: 'cs-north', network: 'chirpstack', site: 'riverside' })
  for (const id of ['node-1', 'node-2', 'node-3']) nodes.push(await startClusterNode(fleet, redis.url, id))
  client = connectRedis({ url: redis.url, name: 'test', logger: createLogger({ level: 'silent' }) })
}, 120_000)
afterAll(async () => {
  for (const device of devices) device.end(true)
  for (const node of nodes) await node.stop()
  client?.disconnect()
  fleet?.cleanup()
  await redis?.stop()
})

function device (node: ClusterNodeProcess, id: string, options: mqtt.IClientOptions = {}): Promise<MqttClient> {
  return connectClient(node.url, fleet, fleet.device(id), id, options).then((c) => { devices.push(c); return c })
}

/** Whether a TLS+MQTT connection of this device to the node is refused (handshake or CONNACK). */
async function refused (node: ClusterNodeProcess, id: string): Promise<boolean> {
  try {
    const c = await device(node, id)
    c.end(true)
    return false
  } catch {
    return true
  }
}

/** Every entry of every partition, decoded. */
async function streamEntries (): Promise<Array<{ topic: string, node: string, payload: string, partition: number }>> {
  const entries: Array<{ topic: string, node: string, payload: string, partition: number }> = []
  for (let p = 0; p < 16; p++) {
    for (const [, fields] of await client.xrange(keys.stream(p), '-', '+')) {
      const map = new Map<string, string>()
      for (let i = 0; i < fields.length; i += 2) map.set(fields[i]!, fields[i + 1]!)
      entries.push({ topic: map.get('t')!, node: map.get('n')!, payload: map.get('p')!, partition: p })
    }
  }
  return entries
}

function placeguard (...args: string[]): Promise<{ status: number, stdout: string, stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['bin/placeguard.js', '--data-dir', fleet.dataDir, ...args], { encoding: 'utf8', env: { ...process.env, PLACEGUARD_REDIS_URL: redis.url } },
      (error, stdout, stderr) => resolve({ status: error ? Number(error.code ?? 1) : 0, stdout, stderr }))
  })
}

const closed = (c: MqttClient): Promise<number> => {
  const started = Date.now()
  return new Promise((resolve) => { if (!c.connected) resolve(0); else c.once('close', () => resolve(Date.now() - started)) })
}

describe('a three-node broker cluster on Redis', () => {
  it('holds a device\'s telemetry in its partition\'s stream by the time the PUBACK arrives, and routes it to a subscriber on another node', async () => {
    const subscriber = await connectClient(nodes[2]!.url, fleet, collectorFiles(fleet), 'collector-watch')
    devices.push(subscriber)
    const heard: string[] = []
    subscriber.on('message', (_t, payload) => heard.push(payload.toString()))
    await subscriber.subscribeAsync(topicOf('flood-00001'), { qos: 1 })
    const d1 = await device(nodes[0]!, 'flood-00001')
    const payload = JSON.stringify({ ts: Date.now(), seq: 1, fw: '3.2.1', level_cm: 41, battery_v: 3.6 })
    await d1.publishAsync(topicOf('flood-00001'), payload, { qos: 1 })
    // Read right after the PUBACK: no waiting.
    expect((await streamEntries()).filter((e) => e.topic === topicOf('flood-00001'))).toEqual([{ topic: topicOf('flood-00001'), node: 'node-1', payload, partition: partitionOf('flood-00001', DEFAULT_PARTITIONS) }])
    await waitFor(() => heard.length === 1, 5_000, 'the message on node-3')
    expect(heard).toEqual([payload])
  })

  it('holds a LoRaWAN integration\'s uplink in the stream re-addressed, on the integration\'s partition, by the time the PUBACK arrives', async () => {
    const chirpstack = 'application/flood-sensors/device/0101010101010101/event/up'
    const integration = await connectClient(nodes[1]!.url, fleet, fleet.device('cs-north'), 'cs-north')
    devices.push(integration)
    const payload = JSON.stringify({ time: '2026-11-30T08:15:02Z', deviceInfo: { devEui: '0101010101010101' }, fCnt: 7, object: { level_cm: 41 } })
    await integration.publishAsync(chirpstack, payload, { qos: 1 })
    const topic = lorawanUplinkTopic('cs-north', chirpstack)
    // The partition is the publishing client's (the integration's), not the DevEUI's: one integration's uplinks stay in order.
    expect((await streamEntries()).filter((e) => e.topic.endsWith(chirpstack))).toEqual([{ topic, node: 'node-2', payload, partition: partitionOf('cs-north', DEFAULT_PARTITIONS) }])
  })

  it('enforces a revocation issued once, where the CA key is, on every node within 10 s', async () => {
    const d2 = await device(nodes[1]!, 'flood-00002')
    const gone = closed(d2)
    const revoke = await placeguard('pki', 'revoke', 'flood-00002')
    expect(revoke.stderr).toBe('')
    expect(revoke.stdout).toMatch(/CRL sent to the cluster \(3 listening connections\)/)
    expect(await Promise.race([gone, new Promise((resolve) => setTimeout(() => resolve('still connected'), 10_000))])).toBeLessThan(10_000)
    for (const node of nodes) expect(await refused(node, 'flood-00002')).toBe(true)
    // A device not revoked still connects everywhere: the nodes refuse by the CRL, not by accident.
    for (const node of nodes) expect(await refused(node, 'flood-00006')).toBe(false)
  }, 60_000)

  it('enforces a quarantine sent to one node on every node within 10 s, and a lift sent to another', async () => {
    const d3 = await device(nodes[2]!, 'flood-00003')
    const gone = closed(d3)
    const add = await placeguard('quarantine', 'add', 'flood-00003', '--for', '10m', '--reason', 'cluster test', '--broker', nodes[0]!.url)
    expect(add).toMatchObject({ status: 0 })
    expect(await Promise.race([gone, new Promise((resolve) => setTimeout(() => resolve('still connected'), 10_000))])).toBeLessThan(10_000)
    expect(await refused(nodes[1]!, 'flood-00003')).toBe(true)
    expect(await refused(nodes[2]!, 'flood-00003')).toBe(true)
    expect(await client.hexists(keys.quarantine, 'flood-00003')).toBe(1)
    expect(await placeguard('quarantine', 'lift', 'flood-00003', '--broker', nodes[1]!.url)).toMatchObject({ status: 0 })
    let back = false
    for (let attempt = 0; attempt < 50 && !back; attempt++) {
      back = !await refused(nodes[0]!, 'flood-00003')
      if (!back) await new Promise((resolve) => setTimeout(resolve, 200))
    }
    expect(back).toBe(true)
  }, 60_000)

  it('catches the same certificate on two nodes: the older session is closed and duplicate-identity names both nodes', async () => {
    const first = await device(nodes[0]!, 'flood-00004')
    const gone = closed(first)
    await device(nodes[1]!, 'flood-00004')
    expect(await Promise.race([gone, new Promise((resolve) => setTimeout(() => resolve('still connected'), 10_000))])).toBeLessThan(10_000)
    let event: Record<string, unknown> | undefined
    for (let attempt = 0; attempt < 50 && !event; attempt++) {
      event = (await streamEntries()).filter((e) => e.topic === `${SECURITY_EVENTS_PREFIX}duplicate-identity`).map((e) => JSON.parse(e.payload) as Record<string, unknown>)
        .find((e) => e.deviceId === 'flood-00004')
      if (!event) await new Promise((resolve) => setTimeout(resolve, 100))
    }
    expect(event).toMatchObject({ type: 'duplicate-identity', deviceId: 'flood-00004', node: 'node-2', details: { node: 'node-2', otherNode: 'node-1', sameCertificate: true } })
  }, 30_000)

  it('moves a collector\'s persistent session from a node killed with SIGKILL to another, with every queued message', async () => {
    const tls = { cafile: fleet.paths.caCert, cert: fleet.paths.collectorCert, key: fleet.paths.collectorKey }
    const first = mosquittoSub(nodes[0]!.port, tls, 'collector-moving', [topicOf('flood-00005')], { persistent: true })
    await first.ready
    first.stop()
    await first.exitCode
    const d5 = await device(nodes[1]!, 'flood-00005')
    for (let seq = 1; seq <= 50; seq++) await d5.publishAsync(topicOf('flood-00005'), `queued-${seq}`, { qos: 1 })
    await nodes[0]!.kill()
    const resumed = mosquittoSub(nodes[2]!.port, tls, 'collector-moving', [topicOf('flood-00005')], { persistent: true })
    try {
      await waitFor(() => resumed.lines.length >= 50, 15_000, 'the 50 queued messages on node-3')
      expect(resumed.lines).toEqual(Array.from({ length: 50 }, (_, n) => `${topicOf('flood-00005')} queued-${n + 1}`))
    } finally {
      resumed.stop()
    }
  }, 60_000)

  it('answers /healthz without a token and /metrics only with one, per node', async () => {
    const health = await fetch(new URL('/healthz', nodes[1]!.httpUrl))
    expect(health.status).toBe(200)
    expect(await health.json()).toMatchObject({ status: 'ok', node: 'node-2', redis: 'up' })
    expect((await fetch(new URL('/metrics', nodes[1]!.httpUrl))).status).toBe(401)
    const metrics = await (await fetch(new URL('/metrics', nodes[1]!.httpUrl), { headers: { authorization: `Bearer ${NODE_METRICS_TOKEN}` } })).text()
    expect(metrics).toMatch(/^placeguard_node_up 1$/m)
    expect(metrics).toMatch(/^placeguard_node_sessions\{role="device"\} [1-9]/m)
    expect(Number(/^placeguard_node_handoff_total (\d+)/m.exec(metrics)?.[1])).toBeGreaterThan(0)
    // The killed node answers nothing at all.
    await expect(fetch(new URL('/healthz', nodes[0]!.httpUrl))).rejects.toThrow()
  })

  it('shows a node that died as dead within its heartbeat\'s 10 s, the others alive with their sessions', async () => {
    expect(nodes[0]!.child().signalCode).toBe('SIGKILL')
    let status: { nodes: Array<{ nodeId: string, alive: boolean, connections: Record<string, number> }> } | undefined
    for (let attempt = 0; attempt < 60; attempt++) {
      const result = await placeguard('cluster', 'status', '--json')
      expect(result.status).toBe(0)
      status = JSON.parse(result.stdout) as typeof status
      if (status!.nodes.find((n) => n.nodeId === 'node-1')?.alive === false) break
      await new Promise((resolve) => setTimeout(resolve, 500))
    }
    expect(status!.nodes.map((n) => [n.nodeId, n.alive])).toEqual([['node-1', false], ['node-2', true], ['node-3', true]])
    expect(status!.nodes.find((n) => n.nodeId === 'node-2')!.connections.device).toBeGreaterThanOrEqual(1)
    const table = await placeguard('cluster', 'status')
    expect(table.stdout).toMatch(/node-1\s+DEAD/)
    expect(table.stdout).toMatch(/2 of 3 nodes alive/)
  }, 60_000)
})


