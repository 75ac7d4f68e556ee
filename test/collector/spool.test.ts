import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { Spool } from '../../collector/spool.ts'
import { sqlitePlace } from '../helpers/store-place.ts'
import { telemetrySpoolContract } from './telemetry-spool.contract.ts'

telemetrySpoolContract('SQLite Spool', sqlitePlace('spool', (path, maxBytes: number) => new Spool({ path, maxBytes })))

describe('Spool', () => {
  let dir: string
  let path: string
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'pg-spool-'))
    path = join(dir, 'spool.db')
  })
  afterEach(() => rmSync(dir, { recursive: true, force: true }))

  it('keeps every point whose append returned when the process is killed with SIGKILL', async () => {
    const perBatch = 200
    const child = spawn(process.execPath, [join(import.meta.dirname, '..', 'helpers', 'spool-append-process.ts'), path, String(perBatch)],
      { stdio: ['ignore', 'pipe', 'pipe'] })
    let acknowledged = 0
    let stderr = ''
    child.stderr.on('data', (chunk) => { stderr += chunk })
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)))
    let output = ''
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (chunk: Buffer) => {
        output += chunk.toString()
        const complete = output.slice(0, output.lastIndexOf('\n')).split('\n')
        acknowledged = Number(complete.at(-1) ?? 0)
        // Killed mid-stream: the next append is very likely in flight.
        if (acknowledged >= 20_000) { child.kill('SIGKILL'); resolve() }
      })
      child.on('exit', () => reject(new Error(`appender exited early: ${stderr}`)))
    })
    expect(await exited).toBe('SIGKILL')
    const spool = new Spool({ path, maxBytes: 1024 ** 3 })
    const kept = spool.pendingPoints
    expect(kept).toBeGreaterThanOrEqual(acknowledged)
    expect(kept % perBatch).toBe(0) // no half-written batch
    const all = spool.peek(kept)!.points
    expect(all.map((point) => point.fields.seq)).toEqual(Array.from({ length: kept }, (_, i) => i))
    spool.close()
  })
})
