/**
 * Debian's victoria-metrics as the tests' time-series store: it accepts the
 * InfluxDB line protocol on /api/v2/write (ignoring org and bucket) and
 * stores each field as the series `<measurement>_<field>`, tags as labels.
 * It keeps the last seconds of acknowledged writes in memory, so it is only
 * ever stopped with SIGTERM, which flushes them.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from './free-port.ts'

export interface ExportedSeries {
  metric: Record<string, string>
  values: number[]
  timestamps: number[]
}

export interface RunningVictoriaMetrics {
  url: string
  port: number
  /** SIGTERM (it flushes what it holds in memory), waits for the exit, keeps the data: an outage. */
  halt: () => Promise<void>
  /** Halts it and removes a data dir it made: the end of a test. */
  stop: () => Promise<void>
  /** Starts it again on the same port and data dir (after `halt`, or halts it first). */
  restart: () => Promise<void>
  /** Raw samples of the series matching a selector, e.g. `{__name__=~"flood_.*"}`. */
  exportSeries: (match: string) => Promise<ExportedSeries[]>
}

export interface VictoriaMetricsOptions {
  dataDir?: string
  port?: number
  extraArgs?: string[]
}

const BINARY = '/usr/bin/victoria-metrics'

export async function startVictoriaMetrics (options: VictoriaMetricsOptions = {}): Promise<RunningVictoriaMetrics> {
  const ownDataDir = options.dataDir === undefined
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'pg-vm-'))
  const port = options.port ?? await freePort()
  const url = `http://127.0.0.1:${port}`
  const args = [
    `-storageDataPath=${dataDir}`, `-httpListenAddr=127.0.0.1:${port}`,
    // Fresh samples are queryable at once (the default hides the last 30 s).
    '-search.latencyOffset=0s', '-loggerLevel=ERROR', ...options.extraArgs ?? [],
  ]
  let child: ChildProcess | undefined

  const start = async (): Promise<void> => {
    const vm = spawn(BINARY, args, { stdio: ['ignore', 'ignore', 'pipe'] })
    child = vm
    let stderr = ''
    vm.stderr?.on('data', (chunk) => { stderr += chunk })
    let exitedEarly: Error | undefined
    vm.once('exit', (code) => { exitedEarly = new Error(`victoria-metrics exited with ${code} before it was healthy: ${stderr}`) })
    try {
      await waitForHealth(url, () => exitedEarly)
    } catch (error) {
      await halt()
      throw error
    }
  }

  const halt = async (): Promise<void> => {
    const running = child
    child = undefined
    if (!running || running.exitCode !== null || running.signalCode !== null) return
    const exited = new Promise<void>((resolve) => running.once('exit', () => resolve()))
    running.kill('SIGTERM')
    await exited
  }

  await start()
  return {
    url,
    port,
    halt,
    stop: async () => {
      await halt()
      if (ownDataDir) rmSync(dataDir, { recursive: true, force: true })
    },
    restart: async () => {
      await halt()
      await start()
    },
    exportSeries: async (match) => {
      await fetch(`${url}/internal/force_flush`)
      const response = await fetch(`${url}/api/v1/export?${new URLSearchParams({ 'match[]': match })}`)
      if (!response.ok) throw new Error(`export ${match}: ${response.status} ${await response.text()}`)
      const text = await response.text()
      return text.split('\n').filter((line) => line !== '').map((line) => JSON.parse(line) as ExportedSeries)
    },
  }
}

async function waitForHealth (url: string, exitedEarly: () => Error | undefined, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const exitError = exitedEarly()
    if (exitError) throw exitError
    try {
      const response = await fetch(`${url}/health`)
      if (response.ok) return
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`victoria-metrics at ${url} not healthy within ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

