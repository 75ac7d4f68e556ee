import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { Spool, SpoolFullError } from '../../collector/spool.ts'
import type { StoredPoint } from '../../collector/stored-point.ts'

function points (from: number, count: number): StoredPoint[] {
  return Array.from({ length: count }, (_, i) => ({
    measurement: 'housing', tags: { site: 'estate-north', device: 'housing-007' },
    fields: { temp_c: 20.5, co2_ppm: 612, seq: from + i, fw: '1.4.2', door_open: false }, timestampMs: 1_700_000_000_000 + from + i,
  }))
}

const seqs = (batch: StoredPoint[] | undefined): unknown[] => (batch ?? []).map((point) => point.fields.seq)

describe('Spool', () => {
  let dir: string
  let path: string
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'pg-spool-'))
    path = join(dir, 'spool.db')
  })
  afterEach(() => rmSync(dir, { recursive: true, force: true }))

  it('hands points back oldest first, unchanged, until they are removed', () => {
    const spool = new Spool({ path, maxBytes: 1_000_000 })
    spool.append(points(0, 3))
    spool.append(points(3, 4))
    expect(spool.peek(100)?.points).toEqual([...points(0, 3), ...points(3, 4)])
    const first = spool.peek(5)!
    expect(seqs(first.points)).toEqual([0, 1, 2, 3, 4])
    expect(seqs(spool.peek(5)?.points)).toEqual([0, 1, 2, 3, 4]) // peek does not consume
    spool.remove(first.uptoId)
    expect(spool.pendingPoints).toBe(2)
    expect(seqs(spool.peek(5)?.points)).toEqual([5, 6])
    spool.remove(spool.peek(5)!.uptoId)
    expect(spool.peek(5)).toBeUndefined()
    expect(spool.pendingPoints).toBe(0)
    expect(spool.bytes).toBe(0)
    spool.close()
  })

  it('counts the exact JSON bytes it holds, and never reuses an id', () => {
    const spool = new Spool({ path, maxBytes: 1_000_000 })
    const batch = points(0, 10)
    spool.append(batch)
    const expected = batch.reduce((sum, point) => sum + Buffer.byteLength(JSON.stringify(point)), 0)
    expect(spool.bytes).toBe(expected)
    const { uptoId } = spool.peek(10)!
    spool.remove(uptoId)
    spool.append(points(10, 1))
    expect(spool.peek(1)!.uptoId).toBeGreaterThan(uptoId)
    spool.remove(uptoId) // a stale id from before cannot remove the new point
    expect(spool.pendingPoints).toBe(1)
    spool.close()
  })

  it('refuses a batch that would exceed maxBytes as a whole, and loses nothing it held', () => {
    const onePoint = Buffer.byteLength(JSON.stringify(points(0, 1)[0]))
    const spool = new Spool({ path, maxBytes: onePoint * 10 })
    spool.append(points(0, 8))
    expect(spool.nearFull).toBe(false)
    spool.append(points(8, 1))
    expect(spool.nearFull).toBe(true)
    expect(() => spool.append(points(9, 2))).toThrow(SpoolFullError)
    expect(spool.pendingPoints).toBe(9)
    expect(seqs(spool.peek(100)?.points)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8])
    spool.remove(spool.peek(5)!.uptoId)
    spool.append(points(9, 2)) // room again once the store drained some
    expect(seqs(spool.peek(100)?.points)).toEqual([5, 6, 7, 8, 9, 10])
    spool.close()
  })

  it('refuses a point the store could never accept, before storing any of its batch', () => {
    const spool = new Spool({ path, maxBytes: 1_000_000 })
    const bad = { ...points(1, 1)[0]!, fields: { level_cm: Number.NaN } }
    expect(() => spool.append([...points(0, 1), bad])).toThrow(/invalid float value/)
    expect(spool.pendingPoints).toBe(0)
    spool.close()
  })

  it('keeps its points, order and byte count across a reopen', () => {
    const spool = new Spool({ path, maxBytes: 1_000_000 })
    spool.append(points(0, 50))
    spool.remove(spool.peek(20)!.uptoId)
    const bytes = spool.bytes
    spool.close()
    const reopened = new Spool({ path, maxBytes: 1_000_000 })
    expect(reopened.pendingPoints).toBe(30)
    expect(reopened.bytes).toBe(bytes)
    expect(seqs(reopened.peek(100)?.points)).toEqual(seqs(points(20, 30)))
    reopened.close()
  })

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
