/**
 * Where a provider's files are read from: over HTTP(S) with node's fetch,
 * or from a directory (the offline mirror of an air-gapped site). Either
 * way every read is bounded in time and size, because the other end may
 * be hostile (STRIDE D): a body larger than its limit is cut off while it
 * streams, never buffered whole, and a server that stalls is given up on.
 */
import { open, stat } from 'node:fs/promises'
import { join, resolve, sep } from 'node:path'

/** A read that failed for a reason worth reporting (too large, timed out, refused): the sync names the file and goes on. */
export class SourceError extends Error {}

export interface SourceLimits {
  /** Per request, connect to last byte (default 30 s). */
  timeoutMs: number
}

export interface ProviderSource {
  /** What the user gave: the metadata URL or the mirror directory. */
  readonly given: string
  readonly kind: 'http' | 'directory'
  /** A file's bytes; undefined when there is none (HTTP 404, no such file). */
  read: (location: string, maxBytes: number) => Promise<Buffer | undefined>
  /** Requests (or file reads) made so far: the sync's cost, and what a test of incremental sync counts. */
  readonly reads: number
}

export function httpSource (given: string, limits: SourceLimits): ProviderSource {
  let reads = 0
  return {
    given,
    kind: 'http',
    get reads () { return reads },
    async read (location, maxBytes) {
      const url = new URL(location)
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new SourceError(`${location}: only http and https are fetched`)
      reads++
      let response: Response
      try {
        response = await fetch(url, { signal: AbortSignal.timeout(limits.timeoutMs), redirect: 'follow', headers: { accept: 'application/json, text/plain, */*' } })
      } catch (error) {
        throw new SourceError(`${location}: ${describeFetchError(error)}`)
      }
      if (response.status === 404 || response.status === 410) {
        await response.body?.cancel()
        return undefined
      }
      if (!response.ok) {
        await response.body?.cancel()
        throw new SourceError(`${location}: HTTP ${response.status}`)
      }
      const declared = Number(response.headers.get('content-length'))
      if (Number.isFinite(declared) && declared > maxBytes) {
        await response.body?.cancel()
        throw new SourceError(`${location}: ${declared} bytes is over the ${maxBytes}-byte limit`)
      }
      return await readBounded(location, response, maxBytes)
    },
  }
}

async function readBounded (location: string, response: Response, maxBytes: number): Promise<Buffer> {
  if (!response.body) return Buffer.alloc(0)
  const chunks: Buffer[] = []
  let size = 0
  const reader = response.body.getReader()
  try {
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      size += value.byteLength
      // Cut off as it streams: a server that lies about (or omits) its length still cannot fill memory.
      if (size > maxBytes) {
        await reader.cancel()
        throw new SourceError(`${location}: more than the ${maxBytes}-byte limit`)
      }
      chunks.push(Buffer.from(value))
    }
  } catch (error) {
    if (error instanceof SourceError) throw error
    throw new SourceError(`${location}: ${describeFetchError(error)}`)
  }
  return Buffer.concat(chunks, size)
}

function describeFetchError (error: unknown): string {
  const e = error as Error & { cause?: Error & { code?: string } }
  if (e.name === 'TimeoutError' || e.name === 'AbortError') return 'timed out'
  return e.cause?.code ?? e.cause?.message ?? e.message
}

/** The mirror directory: locations are paths below it, and a path that climbs out of it is refused. */
export function directorySource (root: string): ProviderSource {
  const base = resolve(root)
  let reads = 0
  return {
    given: root,
    kind: 'directory',
    get reads () { return reads },
    async read (location, maxBytes) {
      const path = resolve(base, location)
      if (path !== base && !path.startsWith(base + sep)) throw new SourceError(`${location}: outside the mirror directory`)
      reads++
      let size: number
      try {
        const info = await stat(path)
        if (!info.isFile()) return undefined
        size = info.size
      } catch {
        return undefined
      }
      if (size > maxBytes) throw new SourceError(`${location}: ${size} bytes is over the ${maxBytes}-byte limit`)
      const handle = await open(path, 'r')
      try {
        // Read no more than the limit even if the file grew since stat.
        const buffer = Buffer.alloc(Math.min(size, maxBytes) + 1)
        const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0)
        if (bytesRead > maxBytes) throw new SourceError(`${location}: more than the ${maxBytes}-byte limit`)
        return buffer.subarray(0, bytesRead)
      } finally {
        await handle.close()
      }
    },
  }
}

/** A path inside the mirror for display and joining (POSIX separators in what providers publish). */
export function joinLocation (source: ProviderSource, base: string, relative: string): string {
  if (source.kind === 'http') return new URL(relative, base.endsWith('/') ? base : `${base}/`).toString()
  return join(base, ...relative.split('/'))
}
