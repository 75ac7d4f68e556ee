import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs'
import { dirname } from 'node:path'

/**
 * Writes a file so that readers see the old content or the new, never half:
 * a temporary sibling, fsync, then rename (POSIX rename is atomic). Private
 * keys pass mode 0o600 and are created with it — never chmod-ed afterwards.
 */
export function writeFileAtomic (path: string, content: string, mode = 0o644): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 })
  const temporary = `${path}.${process.pid}.tmp`
  const fd = openSync(temporary, 'w', mode)
  try {
    writeSync(fd, content)
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  try {
    renameSync(temporary, path)
  } catch (error) {
    rmSync(temporary, { force: true })
    throw error
  }
}

/** Writes a set of files all-or-nothing: if one fails, those already written are removed. */
export function writeFilesAtomic (files: Array<{ path: string, content: string, mode?: number }>): void {
  const written: string[] = []
  try {
    for (const file of files) {
      writeFileAtomic(file.path, file.content, file.mode)
      written.push(file.path)
    }
  } catch (error) {
    for (const path of written) rmSync(path, { force: true })
    throw error
  }
}

/** A text file's content, or undefined when it does not exist yet (any other error is thrown). */
export function readTextIfExists (path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  }
}
