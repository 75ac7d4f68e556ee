/**
 * Debian's HAProxy as the tests' TCP load balancer in front of broker
 * nodes, as deploy/haproxy/haproxy.cfg runs it in production but with fast
 * health checks: TLS passes through untouched, so each broker still sees
 * the device's own certificate. It runs in the foreground (-db) from a
 * config and admin socket in a temp dir; `servers()` reads the state
 * HAProxy holds for each backend (UP, DOWN) from that socket.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from './free-port.ts'

export interface HaproxyBackend {
  /** e.g. broker-1; the default is broker-<i + 1>. */
  name?: string
  port: number
}

export interface HaproxyOptions {
  backends: HaproxyBackend[]
  /**
   * How HAProxy checks a backend: `tcp` (a bare TCP connect), or `tls`: a
   * TLS handshake with this client certificate (cert and key in one PEM)
   * verified against `caFile`.
   */
  check?: { kind: 'tcp' } | { kind: 'tls', certAndKey: string, caFile: string }
  /** The health-check period, ms (production: 2000). */
  checkIntervalMs?: number
}

export interface ServerState {
  /** UP, DOWN, MAINT, or e.g. "DOWN 1/2" while a check is still failing. */
  status: string
  /** Connections open to it now. */
  connections: number
}

export interface RunningHaproxy {
  port: number
  url: string
  /** The generated configuration, for failure messages. */
  config: string
  /** HAProxy's own log (stderr), for failure messages. */
  logs: () => string
  /** Each backend server's state as HAProxy sees it, by name. */
  servers: () => Promise<Record<string, ServerState>>
  stop: () => Promise<void>
}

const BINARY = '/usr/sbin/haproxy'

export async function startHaproxy (options: HaproxyOptions): Promise<RunningHaproxy> {
  const dir = mkdtempSync(join(tmpdir(), 'pg-haproxy-'))
  const port = await freePort()
  const socket = join(dir, 'admin.sock')
  const inter = options.checkIntervalMs ?? 200
  const check = options.check ?? { kind: 'tcp' }
  const checkOptions = check.kind === 'tls' ? ` check-ssl crt ${check.certAndKey} ca-file ${check.caFile} verify required` : ''
  const config = [
    'global',
    '  log stderr format raw local0 info',
    `  stats socket ${socket} mode 600 level admin`,
    '  maxconn 2000',
    'defaults',
    '  mode tcp',
    '  log global',
    '  option tcplog',
    '  timeout connect 2s',
    '  timeout client 10m',
    '  timeout server 10m',
    '  retries 3',
    '  option redispatch 1',
    'frontend mqtt',
    `  bind 127.0.0.1:${port}`,
    '  default_backend brokers',
    'backend brokers',
    '  balance leastconn',
    // One failed check marks a server down, one good one up again: fast for tests.
    `  default-server inter ${inter}ms fastinter ${inter}ms downinter ${inter}ms fall 1 rise 1 on-marked-down shutdown-sessions${checkOptions}`,
    ...options.backends.map((backend, i) => `  server ${backend.name ?? `broker-${i + 1}`} 127.0.0.1:${backend.port} check`),
    '',
  ].join('\n')
  const file = join(dir, 'haproxy.cfg')
  writeFileSync(file, config)

  const child: ChildProcess = spawn(BINARY, ['-db', '-f', file], { stdio: ['ignore', 'ignore', 'pipe'] })
  let logs = ''
  child.stderr?.on('data', (chunk) => { logs = (logs + String(chunk)).slice(-20_000) })
  let exited: string | undefined
  child.once('exit', (code, signal) => { exited = `haproxy exited (${code ?? signal}): ${logs}` })

  const servers = async (): Promise<Record<string, ServerState>> => {
    const csv = await adminCommand(socket, 'show stat')
    const header = csv.split('\n')[0]!.replace(/^# /, '').split(',')
    const column = (name: string): number => header.indexOf(name)
    const states: Record<string, ServerState> = {}
    for (const line of csv.split('\n').slice(1)) {
      const cells = line.split(',')
      if (cells[column('pxname')] !== 'brokers' || ['FRONTEND', 'BACKEND', undefined].includes(cells[column('svname')])) continue
      states[cells[column('svname')]!] = { status: cells[column('status')]!, connections: Number(cells[column('scur')]) }
    }
    return states
  }

  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      const done = new Promise<void>((resolve) => child.once('exit', () => resolve()))
      child.kill('SIGTERM')
      await done
    }
    rmSync(dir, { recursive: true, force: true })
  }

  // Ready once it answers on its admin socket and has checked every backend
  // UP: connecting to the frontend to find out would itself reach a broker.
  const deadline = Date.now() + 15_000
  for (;;) {
    if (exited) { await stop(); throw new Error(exited) }
    const states = await servers().catch(() => undefined)
    if (states && Object.keys(states).length === options.backends.length && Object.values(states).every((s) => s.status === 'UP')) break
    if (Date.now() > deadline) {
      await stop()
      throw new Error(`haproxy not ready within 15 s (servers ${JSON.stringify(states)}):\n${config}\n${logs}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return { port, url: `mqtts://127.0.0.1:${port}`, config, logs: () => logs, servers, stop }
}

/** One command on HAProxy's admin socket; it answers and closes. */
function adminCommand (path: string, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let answer = ''
    const socket = connect(path, () => socket.end(`${command}\n`))
    socket.on('data', (chunk) => { answer += String(chunk) })
    socket.once('error', reject)
    socket.once('close', () => resolve(answer))
  })
}
