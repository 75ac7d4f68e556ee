/**
 * A batch of device identities as one POSIX tar archive (ustar): each
 * device's `<id>.key` (mode 0600) and `<id>.crt`, and the fleet CA's
 * `ca.crt` the devices trust the broker by. What a factory's flashing
 * station takes in one file; `tar -xf` unpacks it with the modes kept.
 *
 * Why an archive: 10,000 identities as files are 20,000 files for the
 * kernel to create in one directory, the larger part of issuing them on
 * this machine (docs/perf/pki-profile.md). One file, written in order and
 * synced once, costs a few milliseconds more than the signatures.
 *
 * The inventory names a member of an archive as `<archive>#<member>`
 * (device ids cannot hold `#`); `pki reconcile` reads the member back.
 */
import { readFileSync } from 'node:fs'

const BLOCK = 512

/** One regular file: its header block, then its content padded to a whole block. */
export function tarEntry (name: string, content: string | Uint8Array, mode: number, mtimeSeconds: number): Buffer {
  const body = typeof content === 'string' ? Buffer.from(content, 'utf8') : Buffer.from(content)
  if (Buffer.byteLength(name) > 100) throw new Error(`tar member name longer than 100 bytes: ${name}`)
  const header = Buffer.alloc(BLOCK)
  header.write(name, 0, 100, 'utf8')
  octal(header, 100, 8, mode)
  octal(header, 108, 8, 0) // uid
  octal(header, 116, 8, 0) // gid
  octal(header, 124, 12, body.length)
  octal(header, 136, 12, mtimeSeconds)
  header.write('        ', 148, 8, 'ascii') // the checksum counts its own field as spaces
  header.write('0', 156, 1, 'ascii') // a regular file
  header.write('ustar\u000000', 257, 8, 'ascii')
  header.write('root', 265, 32, 'ascii')
  header.write('root', 297, 32, 'ascii')
  let sum = 0
  for (const byte of header) sum += byte
  header.write(`${sum.toString(8).padStart(6, '0')}\u0000 `, 148, 8, 'ascii')
  const padded = Buffer.alloc(Math.ceil(body.length / BLOCK) * BLOCK)
  body.copy(padded)
  return Buffer.concat([header, padded])
}

/** Two zero blocks: where a tar archive ends. */
export function tarEnd (): Buffer {
  return Buffer.alloc(2 * BLOCK)
}

function octal (header: Buffer, offset: number, length: number, value: number): void {
  header.write(`${value.toString(8).padStart(length - 1, '0')}\u0000`, offset, length, 'ascii')
}

/**
 * The regular files of an archive, by name. Reading stops at the end
 * marker, a header whose checksum is wrong or a member cut short: a
 * power cut mid-write leaves the members before it whole and readable.
 */
export function readTarMembers (path: string): Map<string, Buffer> {
  const members = new Map<string, Buffer>()
  let archive: Buffer
  try {
    archive = readFileSync(path)
  } catch {
    return members // gone: no member of it landed
  }
  let offset = 0
  while (offset + BLOCK <= archive.length) {
    const header = archive.subarray(offset, offset + BLOCK)
    if (header.every((byte) => byte === 0)) break
    const stored = parseInt(header.toString('ascii', 148, 156).replace(/[\0 ]+$/, ''), 8)
    let sum = 0
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : header[i]!
    if (stored !== sum) break
    const size = parseInt(header.toString('ascii', 124, 136).replace(/\0.*$/, '').trim(), 8)
    const start = offset + BLOCK
    if (!Number.isFinite(size) || start + size > archive.length) break
    const name = header.toString('utf8', 0, 100).replace(/\0.*$/, '')
    if (header[156] === 0x30 || header[156] === 0) members.set(name, archive.subarray(start, start + size))
    offset = start + Math.ceil(size / BLOCK) * BLOCK
  }
  return members
}

const SEPARATOR = '#'

/** How the inventory names a member of an archive. */
export function archiveMemberPath (archivePath: string, member: string): string {
  return `${archivePath}${SEPARATOR}${member}`
}

/** The archive and member a path names, when it names one (`…/batch.tar#dev-1.crt`). */
export function splitArchiveMemberPath (path: string): { archive: string, member: string } | undefined {
  const at = path.lastIndexOf(SEPARATOR)
  if (at <= 0) return undefined
  const archive = path.slice(0, at)
  return archive.endsWith('.tar') ? { archive, member: path.slice(at + 1) } : undefined
}
