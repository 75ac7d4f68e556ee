/**
 * `placeguard broker` faces the network, so it should carry only the code
 * it runs (issue 18: its memory against mosquitto's; less code, less to
 * attack). The command loads its rooms on demand (docs/development.md,
 * "Loading on demand"): a running single broker has loaded broker/ and
 * pki/, and of the other rooms only their config sections — no HTTP
 * server, database or time-series client.
 */
import { spawn } from 'node:child_process'
import { relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestFleet, type TestFleet } from '../helpers/fleet.ts'
import { freePort } from '../helpers/free-port.ts'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const PROBE = fileURLToPath(new URL('../helpers/module-probe.ts', import.meta.url))
const BIN = fileURLToPath(new URL('../../bin/placeguard.js', import.meta.url))

/** Packages a single broker has no use for: the API server, PostgreSQL, InfluxDB, OpenPGP, metrics, the MQTT client, Redis, progress bars. */
const NOT_IN_A_BROKER = ['fastify', 'pg', '@influxdata/influxdb-client', 'openpgp', 'prom-client', 'mqtt', 'ioredis', 'cli-progress']

let fleet: TestFleet
beforeAll(async () => { fleet = await createTestFleet() })
afterAll(() => fleet.cleanup())

/** Starts `placeguard broker`, waits until it listens, and returns the modules it has loaded by then. */
async function modulesOfRunningBroker (): Promise<string[]> {
  const port = await freePort()
  const child = spawn(process.execPath, ['--import', PROBE, BIN, '--data-dir', fleet.dataDir, 'broker', '--mqtt-port', String(port), '--mqtt-host', '127.0.0.1'],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PLACEGUARD_LOG_LEVEL: 'info' } })
  try {
    let out = ''
    let err = ''
    child.stderr.on('data', (chunk: Buffer) => { err += chunk.toString() })
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString()
        if (out.includes('broker listening')) resolve()
      })
      child.once('exit', (code) => reject(new Error(`broker exited (${code}) before listening: ${err}${out}`)))
    })
    child.kill('SIGUSR2')
    const line = await new Promise<string>((resolve) => {
      const look = (): void => {
        const found = err.split('\n').find((l) => l.startsWith('module-probe ') && l.endsWith(']'))
        if (found) resolve(found)
        else child.stderr.once('data', look)
      }
      look()
    })
    return JSON.parse(line.slice('module-probe '.length)) as string[]
  } finally {
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill('SIGTERM')
    await exited
  }
}

describe('placeguard broker loads only what it runs', () => {
  it('has loaded aedes and the fleet PKI, none of the other rooms beyond their config sections, and no HTTP, database or time-series package', async () => {
    const urls = await modulesOfRunningBroker()
    const packages = new Set(urls.flatMap((url) => /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url)?.[1] ?? []))
    const ours = urls.filter((url) => url.startsWith('file:') && !url.includes('/node_modules/')).map((url) => relative(ROOT, fileURLToPath(url)))
    // The probe sees what the broker runs (so an empty list cannot pass).
    expect(packages).toContain('aedes')
    expect(ours).toEqual(expect.arrayContaining(['broker/broker.ts', 'pki/crl.ts', 'app/broker-process.ts']))
    expect(NOT_IN_A_BROKER.filter((name) => packages.has(name))).toEqual([])
    // Of app/, the configuration and the broker's own assembly (with its table fitted to the descriptors); of the rooms a broker does not run, their config sections alone.
    const brokerRooms = /^(bin|cli|broker|pki|shared)\//
    const beyond = ours.filter((file) => !brokerRooms.test(file) && file !== 'package.json')
    // cluster/config.ts takes its defaults from cluster/keys.ts (partitions, node id).
    expect(beyond.filter((file) => !file.endsWith('/config.ts') && file !== 'cluster/keys.ts' && file !== 'app/broker-process.ts' && file !== 'app/descriptor-budget.ts')).toEqual([])
  })
})
