import { type ChildProcess, spawn } from 'node:child_process'
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { FleetPki, readCrl } from '../../pki/index.ts'
import { connectClient } from '../helpers/broker.ts'
import { createTestFleet, type TestFleet } from '../helpers/fleet.ts'
import { freePort } from '../helpers/free-port.ts'

const cleanups: Array<() => void> = []
afterEach(() => { for (const cleanup of cleanups.splice(0)) cleanup() })

function tempDir (prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

interface Running { child: ChildProcess, output: () => string, exited: Promise<number | null> }

function run (command: string, args: string[]): Running {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout!.on('data', (chunk) => { output += chunk })
  child.stderr!.on('data', (chunk) => { output += chunk })
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve))
  cleanups.push(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  return { child, output: () => output, exited }
}

const crlNumber = async (fleet: { paths: FleetPki['paths'] }): Promise<bigint | undefined> =>
  (await readCrl(readFileSync(fleet.paths.crl, 'utf8'), readFileSync(fleet.paths.caCert, 'utf8'))).crlNumber

/**
 * Thread ids of the process traced in `root` (strace -ff writes one file per
 * thread): the root and every thread it or its threads cloned with
 * CLONE_THREAD. Child processes (clone without CLONE_THREAD) are not in it.
 */
function threadsOf (traceDir: string, root: number): Set<number> {
  const threads = new Set([root])
  const pending = [root]
  while (pending.length > 0) {
    const tid = pending.pop()!
    for (const line of readFileSync(join(traceDir, `t.${tid}`), 'utf8').split('\n')) {
      const created = /^clone3?\(.*CLONE_THREAD.*\) = (\d+)$/.exec(line)
      if (created && !threads.has(Number(created[1]))) {
        threads.add(Number(created[1]))
        pending.push(Number(created[1]))
      }
    }
  }
  return threads
}

describe('the CA key stays out of the network-facing process (STRIDE I/E)', () => {
  it('`placeguard broker` runs and serves devices from a pki directory without ca.key', async () => {
    const fleet: TestFleet = await createTestFleet([{ deviceId: 'keyless-1', kind: 'flood', site: 'edge' }])
    cleanups.push(() => fleet.cleanup())
    // A broker node holds a copy of pki/ without the CA key.
    const dataDir = tempDir('placeguard-keyless-')
    mkdirSync(join(dataDir, 'pki'))
    for (const file of ['ca.crt', 'server.crt', 'server.key', 'crl.pem']) copyFileSync(join(fleet.paths.dir, file), join(dataDir, 'pki', file))
    const port = await freePort()
    const broker = run(process.execPath, ['bin/placeguard.js', '--data-dir', dataDir, 'broker', '--mqtt-port', String(port), '--mqtt-host', '127.0.0.1'])
    await vi.waitFor(() => expect(broker.output()).toContain('broker listening'), { timeout: 15_000 })
    const device = await connectClient(`mqtts://127.0.0.1:${port}`, fleet, fleet.device('keyless-1'), 'keyless-1')
    await device.publishAsync('places/edge/flood/keyless-1/telemetry', '{"level":1}', { qos: 1 })
    device.end(true)
    await vi.waitFor(() => expect(broker.output()).toContain('no CA key in this data directory'), { timeout: 15_000 })
    // A keyless node is a deployment, not a fault: nothing logged at error level.
    expect(broker.output()).not.toContain('"level":50')
    broker.child.kill('SIGTERM')
    expect(await broker.exited).toBe(0)
  })

  it('`placeguard up` gets a due CRL re-signed while no thread of its process opens ca.key', async () => {
    const dataDir = tempDir('placeguard-up-crl-')
    // A CRL valid for one day is due at once (re-signed when it lapses within 7 days).
    const pki = new FleetPki(dataDir, { crlValidityDays: 1 })
    await pki.init()
    pki.close()
    const before = await crlNumber(pki)
    const traceDir = tempDir('placeguard-trace-')
    const [mqttPort, httpPort] = [await freePort(), await freePort()]
    const traced = run('strace', ['-f', '-ff', '-qq', '-e', 'trace=openat,clone,clone3,fork,vfork', '-e', 'signal=none', '-o', join(traceDir, 't'),
      process.execPath, 'bin/placeguard.js', '--data-dir', dataDir, 'up', '--mqtt-port', String(mqttPort), '--mqtt-host', '127.0.0.1',
      '--http-port', String(httpPort), '--http-host', '127.0.0.1'])
    await vi.waitFor(async () => expect(await crlNumber(pki)).toBeGreaterThan(before!), { timeout: 60_000, interval: 200 })
    await vi.waitFor(() => expect(traced.output()).toContain('CRL re-signed before it lapses'), { timeout: 30_000 })
    // The process strace started is the one thread no traced clone or fork created.
    const files = readdirSync(traceDir).map((name) => Number(name.slice(2)))
    const created = new Set(files.flatMap((tid) => [...readFileSync(join(traceDir, `t.${tid}`), 'utf8').matchAll(/^(?:clone3?|v?fork)\(.*\) = (\d+)$/gm)].map((m) => Number(m[1]))))
    const [root, ...others] = files.filter((tid) => !created.has(tid))
    expect(others).toEqual([])
    process.kill(root!, 'SIGTERM')
    await traced.exited
    const own = threadsOf(traceDir, root!)
    const opened = (tids: number[]) => tids.filter((tid) => /openat\([^)]*ca\.key/.test(readFileSync(join(traceDir, `t.${tid}`), 'utf8')))
    expect(own.size).toBeGreaterThan(1)
    expect(opened([...own])).toEqual([])
    // The trace does see the key being opened — by the child that re-signed.
    expect(opened(files.filter((tid) => !own.has(tid))).length).toBeGreaterThan(0)
  }, 120_000)
})
