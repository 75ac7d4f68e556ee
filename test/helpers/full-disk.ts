/**
 * A real full filesystem for a test: a small tmpfs (mounting needs root;
 * `refused` says why it could not), and a file that fills it.
 */
import { execFileSync } from 'node:child_process'
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface SmallDisk { dir: string, refused: string | undefined, unmount: () => void }

export function mountSmallDisk (size: string, prefix = 'pg-small-disk-'): SmallDisk {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  let refused: string | undefined
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'pipe' })
  } catch (error) {
    refused = String((error as { stderr?: Buffer }).stderr ?? error)
  }
  return {
    dir, refused,
    unmount: () => {
      // Lazy: a file a failed test left open must not keep the mount behind.
      if (!refused) execFileSync('umount', ['-l', dir])
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

/** Writes a file until the filesystem says ENOSPC: from then on, nothing more fits. */
export function fillDisk (path: string): void {
  const fd = openSync(path, 'w')
  try {
    for (const size of [64 * 1024, 4096, 512, 1]) {
      const chunk = Buffer.alloc(size, 1)
      for (;;) {
        try {
          writeSync(fd, chunk)
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === 'ENOSPC') break
          throw error
        }
      }
    }
  } finally {
    closeSync(fd)
  }
}
