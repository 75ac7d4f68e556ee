/**
 * The single-node broker keeps its session state in <data-dir>/broker.db:
 * what it acknowledged survives `kill -9` (issue 11). Real processes: the
 * `placeguard broker` command, mqtt.js clients with fleet certificates.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { join } from 'node:path'
import mqtt, { type MqttClient } from 'mqtt'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { collectorFiles, connectClient, waitFor } from '../helpers/broker.ts'
import { createTestFleet, read, type TestFleet } from '../helpers/fleet.ts'
import { freePort } from '../helpers/free-port.ts'

const TELEMETRY = 'places/+/+/+/telemetry'
const TOPIC = 'places/block-a/flood/flood-7/telemetry'
const N = 40 // within the default publish burst, so the rate limit plays no part

let fleet: TestFleet
let port: number
let broker: ChildProcess | undefined
const clients: MqttClient[] = []

async function startBroker (): Promise<ChildProcess> {
  const child = spawn(process.execPath, [join(import.meta.dirname, '..', '..', 'bin', 'placeguard.js'), '--data-dir', fleet.dataDir, 'broker', '--mqtt-port', String(port), '--mqtt-host', '127.0.0.1'], { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout!.on('data', (chunk) => { output += chunk })
  child.stderr!.on('data', (chunk) => { output += chunk })
  await waitFor(() => output.includes('broker listening') || child.exitCode !== null, 20_000, 'the broker to listen')
  if (child.exitCode !== null) throw new Error(`broker exited: ${output}`)
  return child
}

function tlsOf (files: { cert: string, key: string }): { cert: Buffer, key: Buffer } {
  return { cert: read(files.cert), key: read(files.key) }
}

function killHard (child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    child.once('exit', () => resolve())
    child.kill('SIGKILL')
  })
}

function collector (clean: boolean, clientId = 'collector'): Promise<MqttClient> {
  return connectClient(`mqtts://127.0.0.1:${port}`, fleet, collectorFiles(fleet), clientId, { clean }).then((client) => { clients.push(client); return client })
}

function subscribe (client: MqttClient, topics: string[]): Promise<void> {
  return new Promise((resolve, reject) => client.subscribe(topics, { qos: 1 }, (error) => error ? reject(error) : resolve()))
}

function end (client: MqttClient): Promise<void> {
  return new Promise((resolve) => client.end(false, {}, () => resolve()))
}

function publish (client: MqttClient, topic: string, payload: object, retain = false): Promise<void> {
  return new Promise((resolve, reject) => client.publish(topic, JSON.stringify(payload), { qos: 1, retain }, (error) => error ? reject(error) : resolve()))
}

beforeAll(async () => {
  fleet = await createTestFleet([{ deviceId: 'flood-7', kind: 'flood', site: 'block-a' }])
  port = await freePort()
})

afterAll(async () => {
  for (const client of clients) client.end(true)
  if (broker && broker.exitCode === null) await killHard(broker)
  fleet.cleanup()
})

describe('placeguard broker after kill -9', () => {
  it('delivers every PUBACKed message queued for the offline collector, once and in order; subscriptions and retained messages survive', async () => {
    broker = await startBroker()
    const first = await collector(false)
    await subscribe(first, [TELEMETRY, '$SYS/placeguard/events/#'])
    await end(first)

    const device = await connectClient(`mqtts://127.0.0.1:${port}`, fleet, fleet.device('flood-7'), 'flood-7')
    clients.push(device)
    for (let seq = 0; seq < N; seq++) await publish(device, TOPIC, { ts: seq, seq, fw: '1.0.0', level_cm: seq, battery_v: 3.6 }) // resolves on PUBACK
    await publish(device, TOPIC, { retained: true }, true)
    device.end(true)

    await killHard(broker)
    broker = await startBroker()

    // The collector comes back without subscribing: what it gets comes through the stored session.
    // The listener is in place before CONNACK: the queue may arrive in the same TLS record.
    const seqs: number[] = []
    const back = mqtt.connect(`mqtts://127.0.0.1:${port}`, { ca: read(fleet.paths.caCert), ...tlsOf(collectorFiles(fleet)), clientId: 'collector', clean: false, reconnectPeriod: 0 })
    clients.push(back)
    back.on('message', (topic, payload) => {
      if (topic !== TOPIC) return
      const body = JSON.parse(String(payload)) as { seq?: number, retained?: boolean }
      if (body.seq !== undefined) seqs.push(body.seq)
    })
    await new Promise((resolve, reject) => { back.once('connect', resolve); back.once('error', reject) })
    await waitFor(() => seqs.length >= N, 20_000, `${N} queued messages (got ${seqs.length})`)

    // A message published after the restart reaches the collector by the
    // stored subscription, and behind everything queued before it: any
    // duplicate of the queue would have arrived by then.
    const again = await connectClient(`mqtts://127.0.0.1:${port}`, fleet, fleet.device('flood-7'), 'flood-7')
    clients.push(again)
    await publish(again, TOPIC, { ts: N, seq: N, fw: '1.0.0', level_cm: N, battery_v: 3.6 })
    await waitFor(() => seqs.includes(N), 20_000, 'the message published after the restart')
    expect(seqs).toEqual(Array.from({ length: N + 1 }, (_, seq) => seq))

    // The retained message is handed to a new subscriber.
    const probe = await collector(true, 'collector-probe')
    const retained: unknown[] = []
    probe.on('message', (_topic, payload, packet) => { if (packet.retain) retained.push(JSON.parse(String(payload))) })
    await subscribe(probe, [TOPIC])
    await waitFor(() => retained.length > 0, 20_000, 'the retained message')
    expect(retained).toEqual([{ retained: true }])
  }, 120_000) // two broker starts and 80 mTLS round trips on a shared machine
})
