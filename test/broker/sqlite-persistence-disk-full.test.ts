/**
 * broker.db on a full disk: what a write's promise says and what the
 * database holds must agree. A write that resolved is acknowledged (aedes
 * PUBACKs on it), so it must be in the file; one that rejected must not be
 * relied on. A real full filesystem: a small tmpfs. Here the batch meets
 * the full disk at its COMMIT; SQLite can also roll the whole batch back
 * from inside a statement (a cache spill), which sqlite-persistence.ts
 * answers the same way (#failBatch), but a batch small enough for this
 * tmpfs does not spill.
 */
import { execFileSync } from 'node:child_process'
import { closeSync, mkdtempSync, openSync, rmSync, unlinkSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SqlitePersistence } from '../../broker/index.ts'
import { createLogger } from '../../shared/logger.ts'

let dir: string
let mountRefused: string | undefined

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'pg-broker-disk-full-'))
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', dir], { stdio: 'pipe' })
  } catch (error) {
    mountRefused = String((error as { stderr?: Buffer }).stderr ?? error)
  }
})

afterAll(() => {
  if (!mountRefused) execFileSync('umount', ['-l', dir])
  rmSync(dir, { recursive: true, force: true })
})

/** Fills the filesystem but for `leaveBytes`. */
function fill (path: string, leaveBytes: number): void {
  const fd = openSync(path, 'w')
  try {
    for (const size of [64 * 1024, 4096, 512]) {
      const chunk = Buffer.alloc(size, 1)
      for (;;) {
        try { writeSync(fd, chunk) } catch (error) {
          if ((error as NodeJS.ErrnoException).code === 'ENOSPC') break
          throw error
        }
      }
    }
  } finally {
    closeSync(fd)
  }
  // Give back a little, so the batch starts and fails part-way.
  execFileSync('truncate', ['-s', `-${leaveBytes}`, path])
}

describe('broker.db on a full disk', () => {
  it('acknowledges exactly what it holds: no write of a batch that failed part-way resolves', async (context) => {
    if (mountRefused) context.skip(`mounting a tmpfs was refused (needs root): ${mountRefused}`)
    const path = join(dir, 'broker.db')
    const persistence = new SqlitePersistence({ path, logger: createLogger({ level: 'silent' }) })
    await persistence.addSubscriptions({ id: 'collector' }, [{ topic: 'places/#', qos: 1 }])
    const filler = join(dir, 'filler')
    fill(filler, 256 * 1024)

    // One turn of the event loop: one batch. Small retained messages first, then queued messages far
    // larger than the room left, so a statement (a cache spill to the WAL) or the COMMIT meets the full disk.
    const outcomes: Array<Promise<{ kind: 'retained' | 'queued', n: number, ok: boolean }>> = []
    const payload = Buffer.alloc(64 * 1024, 7)
    for (let n = 0; n < 40; n++) {
      const settle = (kind: 'retained' | 'queued', write: () => Promise<void>) => {
        let promise: Promise<void>
        try { promise = write() } catch (error) { promise = Promise.reject(error) }
        outcomes.push(promise.then(() => ({ kind, n, ok: true }), () => ({ kind, n, ok: false })))
      }
      settle('retained', () => persistence.storeRetained({ cmd: 'publish', topic: `places/a/flood/d${n}/state`, payload: Buffer.from(`r${n}`), qos: 1, retain: true }))
      settle('queued', () => persistence.outgoingEnqueueCombi([{ clientId: 'collector' }], { cmd: 'publish', topic: `places/a/flood/d${n}/telemetry`, payload, qos: 1, retain: false, brokerId: 'b', brokerCounter: n + 1 }))
    }
    const settled = await Promise.all(outcomes)
    expect(settled.some((o) => !o.ok), 'the disk filled up during the batch').toBe(true)
    await persistence.destroy()
    unlinkSync(filler)

    const db = new DatabaseSync(path, { readOnly: true })
    const retained = new Set((db.prepare('SELECT topic FROM retained').all() as Array<{ topic: string }>).map((r) => Number(/d(\d+)/.exec(r.topic)![1])))
    const queued = new Set((db.prepare('SELECT broker_counter FROM outgoing').all() as Array<{ broker_counter: number | null }>).map((r) => r.broker_counter! - 1))
    db.close()
    for (const outcome of settled.filter((o) => o.ok)) {
      expect(outcome.kind === 'retained' ? retained.has(outcome.n) : queued.has(outcome.n), `${outcome.kind} ${outcome.n} was acknowledged`).toBe(true)
    }
  })
})
