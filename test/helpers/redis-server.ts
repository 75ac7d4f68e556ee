/**
 * Debian's redis-server on a free loopback port, in a temp directory, with
 * the append-only file on (as the cluster profile runs it). `kill` is a
 * crash (SIGKILL); `restart` starts it again on the same port and files.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Socket } from 'node:net'
import { freePort } from './free-port.ts'

export interface RunningRedis {
  url: string
  port: number
  dir: string
  kill: () => Promise<void>
  restart: () => Promise<void>
  stop: () => Promise<void>
}

export async function startRedis (options: { appendfsync?: 'always' | 'everysec' | 'no', password?: string } = {}): Promise<RunningRedis> {
  const dir = mkdtempSync(join(tmpdir(), 'pg-redis-'))
  const port = await freePort()
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'yes',
    '--appendfsync', options.appendfsync ?? 'everysec', '--loglevel', 'warning', ...options.password ? ['--requirepass', options.password] : []]
  let child: ChildProcess | undefined
  const start = async (): Promise<void> => {
    const redis = spawn('/usr/bin/redis-server', args, { stdio: ['ignore', 'ignore', 'pipe'] })
    child = redis
    let stderr = ''
    redis.stderr?.on('data', (chunk) => { stderr += chunk })
    const deadline = Date.now() + 10_000
    while (!await answers(port)) {
      if (redis.exitCode !== null) throw new Error(`redis-server exited with ${redis.exitCode}: ${stderr}`)
      if (Date.now() > deadline) throw new Error('redis-server did not start within 10 s')
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }
  const halt = async (signal: NodeJS.Signals): Promise<void> => {
    const running = child
    if (!running || running.exitCode !== null) return
    const exited = new Promise((resolve) => running.once('exit', resolve))
    running.kill(signal)
    await exited
  }
  await start()
  const auth = options.password ? `:${encodeURIComponent(options.password)}@` : ''
  return {
    url: `redis://${auth}127.0.0.1:${port}`, port, dir,
    kill: () => halt('SIGKILL'),
    restart: async () => { await halt('SIGTERM'); await start() },
    stop: async () => { await halt('SIGTERM'); rmSync(dir, { recursive: true, force: true }) },
  }
}

function answers (port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket()
    socket.once('error', () => resolve(false))
    socket.connect(port, '127.0.0.1', () => {
      socket.write('PING\r\n')
      socket.once('data', (data) => { socket.destroy(); resolve(/PONG|NOAUTH/.test(data.toString())) })
    })
  })
}
