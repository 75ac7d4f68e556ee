/**
 * A broker node of a cluster as a real child process (`placeguard broker
 * --node-id … --redis-url …`), on a data directory of its own holding a
 * copy of the fleet's pki/ without the CA key — as a node is deployed. It
 * can be killed with SIGKILL and started again on the same port.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { cpSync, mkdtempSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { freePort } from './free-port.ts'
import type { TestFleet } from './fleet.ts'

export interface ClusterNodeProcess {
  nodeId: string
  port: number
  url: string
  /** The node's /healthz and /metrics. */
  httpUrl: string
  dataDir: string
  child: () => ChildProcess
  /** stderr lines (JSON log lines at warn and above), bounded. */
  log: () => string[]
  kill: () => Promise<void>
  restart: () => Promise<void>
  stop: () => Promise<void>
}

const BIN = fileURLToPath(new URL('../../bin/placeguard.js', import.meta.url))

/** The API token a test reads a node's /metrics with. */
export const NODE_METRICS_TOKEN = 'node-metrics-token-0123456789'

export async function startClusterNode (fleet: Pick<TestFleet, 'paths'>, redisUrl: string, nodeId: string, options: { limits?: Record<string, number>, logLevel?: string } = {}): Promise<ClusterNodeProcess> {
  const port = await freePort()
  const httpPort = await freePort()
  const dataDir = mkdtempSync(join(tmpdir(), `pg-${nodeId}-`))
  cpSync(fleet.paths.dir, join(dataDir, 'pki'), { recursive: true, filter: (source) => basename(source) !== 'ca.key' })
  const config = join(dataDir, 'node.yaml')
  const limits = Object.entries(options.limits ?? {})
  writeFileSync(config, `logLevel: ${options.logLevel ?? 'warn'}\n${limits.length > 0 ? `broker:\n${limits.map(([k, v]) => `  ${k}: ${v}\n`).join('')}` : ''}`)
  let child: ChildProcess
  const log: string[] = []
  const start = async (): Promise<void> => {
    child = spawn(process.execPath, [BIN, '--data-dir', dataDir, 'broker', '--node-id', nodeId, '--redis-url', redisUrl,
      '--mqtt-port', String(port), '--mqtt-host', '127.0.0.1', '--http-port', String(httpPort), '--http-host', '127.0.0.1', '--config', config],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PLACEGUARD_API_TOKENS: `${NODE_METRICS_TOKEN}:viewer` } })
    const collect = (chunk: Buffer): void => {
      for (const line of chunk.toString().split('\n')) if (line.trim()) log.push(line)
      if (log.length > 500) log.splice(0, log.length - 500)
    }
    child.stdout!.on('data', collect)
    child.stderr!.on('data', collect)
    for (let attempt = 0; attempt < 300; attempt++) {
      if (child.exitCode !== null) throw new Error(`node ${nodeId} exited (${child.exitCode}) before listening: ${log.join('\n')}`)
      if (await listening(port)) return
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    throw new Error(`node ${nodeId} did not listen within 30 s: ${log.join('\n')}`)
  }
  const halt = async (signal: NodeJS.Signals): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill(signal)
    await exited
  }
  await start()
  return {
    nodeId, port, url: `mqtts://127.0.0.1:${port}`, httpUrl: `http://127.0.0.1:${httpPort}`, dataDir,
    child: () => child, log: () => log,
    kill: () => halt('SIGKILL'),
    restart: async () => { await halt('SIGTERM'); await start() },
    stop: () => halt('SIGTERM'),
  }
}

function listening (port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => { socket.destroy(); resolve(true) })
    socket.once('error', () => resolve(false))
  })
}
