/**
 * The broker as a real child process (`placeguard broker`), so a crash shows
 * as an exit and its memory is its own. Started on a temp fleet with the
 * limits given; `memory()` asks the heap probe for a post-GC sample.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { connect } from 'node:net'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { BrokerLimits } from '../../broker/index.ts'
import { freePort } from './free-port.ts'
import type { TestFleet } from './fleet.ts'

export interface MemorySample { rss: number, heapUsed: number }

export interface BrokerProcess {
  port: number
  url: string
  child: ChildProcess
  /** Set once the process exits; a live broker has none. */
  exit: () => { code: number | null, signal: NodeJS.Signals | null } | undefined
  /** The last lines of its stderr (bounded), for failure messages. */
  stderrTail: () => string
  memory: () => Promise<MemorySample>
  stop: () => Promise<void>
}

const PROBE = fileURLToPath(new URL('./heap-probe.ts', import.meta.url))
const BIN = fileURLToPath(new URL('../../bin/placeguard.js', import.meta.url))
const TAIL_LINES = 200

/**
 * `port` reuses a port, e.g. to restart a killed broker where its devices will look for it;
 * `env` replaces the child's environment (e.g. to set NODE_OPTIONS).
 */
export async function startBrokerProcess (fleet: TestFleet, limits: Partial<BrokerLimits> = {}, port?: number, env: NodeJS.ProcessEnv = process.env): Promise<BrokerProcess> {
  port ??= await freePort()
  const config = join(fleet.dataDir, 'broker-process.yaml')
  const entries = Object.entries(limits)
  // An empty `broker:` would be null, which the config schema refuses.
  writeFileSync(config, `logLevel: error\nbroker:${entries.length === 0 ? ' {}\n' : `\n${entries.map(([k, v]) => `  ${k}: ${v}\n`).join('')}`}`)
  const child = spawn(process.execPath, ['--expose-gc', '--import', PROBE, BIN, '--data-dir', fleet.dataDir,
    'broker', '--mqtt-port', String(port), '--mqtt-host', '127.0.0.1', '--config', config], { stdio: ['ignore', 'ignore', 'pipe'], env })
  let exited: { code: number | null, signal: NodeJS.Signals | null } | undefined
  child.once('exit', (code, signal) => { exited = { code, signal } })
  const tail: string[] = []
  const probes: Array<(sample: MemorySample) => void> = []
  let partial = ''
  child.stderr!.on('data', (chunk: Buffer) => {
    const lines = (partial + chunk.toString()).split('\n')
    partial = lines.pop()!
    for (const line of lines) {
      if (line.startsWith('heap-probe ')) { probes.shift()?.(JSON.parse(line.slice('heap-probe '.length)) as MemorySample); continue }
      tail.push(line)
      if (tail.length > TAIL_LINES) tail.shift()
    }
  })
  await waitForPort(port, () => exited, () => tail.join('\n'))
  return {
    port, url: `mqtts://127.0.0.1:${port}`, child,
    exit: () => exited,
    stderrTail: () => tail.join('\n'),
    memory: () => new Promise((resolve, reject) => {
      if (exited) { reject(new Error(`broker exited (${JSON.stringify(exited)}): ${tail.join('\n')}`)); return }
      probes.push(resolve)
      child.kill('SIGUSR2')
    }),
    stop: async () => {
      if (exited) return
      const done = new Promise<void>((resolve) => child.once('exit', () => resolve()))
      child.kill('SIGTERM')
      const hard = setTimeout(() => child.kill('SIGKILL'), 10_000)
      await done
      clearTimeout(hard)
    },
  }
}

async function waitForPort (port: number, exited: () => unknown, tail: () => string): Promise<void> {
  for (let attempt = 0; attempt < 300; attempt++) {
    if (exited()) throw new Error(`broker exited before listening: ${tail()}`)
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1', () => { socket.destroy(); resolve(true) })
      socket.once('error', () => resolve(false))
    })
    if (open) return
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`broker did not listen on ${port} within 30 s: ${tail()}`)
}
