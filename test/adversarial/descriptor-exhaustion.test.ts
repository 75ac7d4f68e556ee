/**
 * `placeguard up` under a peer that only opens connections, on a process
 * with 1,400 file descriptors: idle HTTP connections to the dashboard port
 * and silent TCP connections to the broker, more than the process could
 * hold. Before the bounds, 19,500 idle HTTP connections used every
 * descriptor of npm start and the process exited (its minute inventory read
 * could not open a file); and the broker's table, larger than the limit,
 * would have failed its accepts (EMFILE) before its gate evicted anyone.
 */
import { spawn } from 'node:child_process'
import { readdirSync, writeFileSync } from 'node:fs'
import { connect as tcpConnect, type Socket } from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { connectClient, waitFor } from '../helpers/broker.ts'
import { createTestFleet, type TestFleet } from '../helpers/fleet.ts'
import { freePort } from '../helpers/free-port.ts'

const BIN = fileURLToPath(new URL('../../bin/placeguard.js', import.meta.url))
const OPEN_FILES = 1_400
const TOKEN = 'descriptor-test-token-0123456789:operator'

let fleet: TestFleet
const sockets: Socket[] = []
beforeAll(async () => { fleet = await createTestFleet([{ deviceId: 'fd-1', kind: 'flood', site: 'fd' }]) })
afterAll(() => {
  for (const socket of sockets) socket.destroy()
  fleet?.cleanup()
})

/** Opens `count` TCP connections to `port`, `perAddress` from each of 127.0.`block`.1, .2, …; resolves once each has connected or failed. */
async function openIdle (port: number, count: number, perAddress: number, block: number): Promise<Socket[]> {
  const opened: Socket[] = []
  await Promise.all(Array.from({ length: count }, (_, i) => new Promise<void>((resolve) => {
    const socket = tcpConnect({ host: '127.0.0.1', port, localAddress: `127.0.${block}.${1 + Math.floor(i / perAddress)}` })
    sockets.push(socket)
    opened.push(socket)
    socket.on('error', () => resolve())
    socket.once('connect', () => resolve())
  })))
  return opened
}

describe('placeguard up with its file descriptors under siege', () => {
  it('keeps within its open-file limit, keeps serving devices, and stays up', { timeout: 120_000 }, async () => {
    const [mqttPort, httpPort] = [await freePort(), await freePort()]
    const config = join(fleet.dataDir, 'up.yaml')
    // Silent handshakes held for a minute: the siege lasts the whole test, whatever its pace.
    writeFileSync(config, `logLevel: warn\nmqttHost: 127.0.0.1\nhttpHost: 127.0.0.1\nhttpMaxConnections: 100\nbroker:\n  handshakeTimeoutMs: 60000\n`)
    const child = spawn('bash', ['-c', `ulimit -n ${OPEN_FILES} && exec "$0" "$@"`, process.execPath, BIN, '--data-dir', fleet.dataDir, 'up',
      '--mqtt-port', String(mqttPort), '--http-port', String(httpPort), '--config', config],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PLACEGUARD_API_TOKENS: TOKEN } })
    const output: string[] = []
    child.stdout.on('data', (chunk: Buffer) => output.push(chunk.toString()))
    child.stderr.on('data', (chunk: Buffer) => output.push(chunk.toString()))
    let exit: number | null | undefined
    child.once('exit', (code) => { exit = code })
    const healthz = () => fetch(`http://127.0.0.1:${httpPort}/healthz`).then((r) => r.status, () => 0)
    try {
      await waitFor(async () => await healthz() === 200, 30_000, `placeguard up listening:\n${output.join('')}`)
      // The broker's table was fitted to what is left of 1,400 descriptors once the API's 100 and the files' 256 are counted.
      const lowered = output.join('').split('\n').find((line) => line.includes('broker.maxConnections lowered'))
      expect(lowered, output.join('')).toBeDefined()
      expect(JSON.parse(lowered!)).toMatchObject({ openFileLimit: OPEN_FILES, maxConnections: 1_044, reservedConnections: 522 })

      // 300 idle connections to the dashboard port from five addresses, 1,500 silent ones to the broker from 75.
      await openIdle(httpPort, 300, 60, 2)
      await openIdle(mqttPort, 1_500, 20, 3)
      // The gate holds its unauthenticated share (522 handshakes) and evicts the rest as they come; the
      // process stays well inside the limit (100 HTTP connections, 522 handshakes, the files), where at
      // the limit every accept would fail. (Counted on the process: a client whose connection the
      // kernel's full accept queue dropped still believes it is connected.)
      await new Promise((resolve) => setTimeout(resolve, 2_000))
      const descriptors = readdirSync(`/proc/${child.pid}/fd`).length
      expect(descriptors).toBeLessThan(OPEN_FILES - 300)

      // A device still connects and has its publish acknowledged, and the process is alive.
      const device = await connectClient(`mqtts://127.0.0.1:${mqttPort}`, fleet, fleet.device('fd-1'), 'fd-1')
      await device.publishAsync('places/fd/flood/fd-1/telemetry', JSON.stringify({ ts: Date.now(), seq: 1, fw: '1.0.0', level_cm: 10, battery_v: 3.6 }), { qos: 1 })
      device.end(true)
      expect(exit).toBeUndefined()
      // The dashboard answers again once the idle connections are gone.
      for (const socket of sockets) socket.destroy()
      await waitFor(async () => await healthz() === 200, 10_000, 'the API to answer once the idle connections are gone')
      expect(output.join('')).toMatch(/HTTP connections refused at accept/)
    } finally {
      child.kill('SIGTERM')
      await new Promise((resolve) => { if (exit !== undefined) resolve(undefined); else child.once('exit', resolve) })
    }
  })
})
