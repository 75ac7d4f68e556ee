/**
 * Makes a batch of files just written durable in one step, instead of one
 * fsync per file as each is written. On this 2-core ext4 machine an fsync
 * costs a journal commit and a small data write; libuv's four threads run
 * four at a time, so 20,000 key and certificate files spent 2.5–9 s in
 * fsync alone (docs/perf/pki-profile.md). syncfs(2) writes back every
 * dirty file of the filesystem in one sorted pass and commits the journal
 * once: ~0.2 s for the same files. Node has no syncfs binding, so a large
 * batch asks coreutils' `sync -f` (busybox has it too); where that is
 * missing or fails, each file and directory is fsynced, the old way.
 */
import { execFile } from 'node:child_process'
import { open } from 'node:fs/promises'
import { dirname } from 'node:path'

/** Below this many files, fsyncing each costs less than starting `sync`. */
const SYNCFS_FROM = 64
/** fsyncs in flight: more than libuv's pool runs lets the next wait ready. */
const IN_FLIGHT = 16

export async function syncBatch (files: string[]): Promise<void> {
  const dirs = [...new Set(files.map((path) => dirname(path)))]
  if (files.length >= SYNCFS_FROM && await syncFilesystems(dirs)) return
  await fsyncEach(files)
  // The directories hold the new names: without their fsync a file can be whole and unreachable.
  await fsyncEach(dirs)
}

/** syncfs(2) on the filesystem of each directory; false when it could not be run. */
async function syncFilesystems (dirs: string[]): Promise<boolean> {
  return new Promise((resolve) => {
    execFile('sync', ['-f', ...dirs], { timeout: 120_000 }, (error) => resolve(error === null))
  })
}

async function fsyncEach (paths: string[]): Promise<void> {
  let next = 0
  async function lane (): Promise<void> {
    while (next < paths.length) {
      const file = await open(paths[next++]!, 'r')
      try {
        await file.sync()
      } finally {
        await file.close()
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(IN_FLIGHT, paths.length) }, lane))
}
