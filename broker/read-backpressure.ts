/**
 * Read back-pressure for one aedes client — the second half of the fix for
 * aedes under a fast TLS publisher (docs/broker.md, "The aedes fix").
 *
 * aedes uses one function (nextBatch) both as the per-packet completion
 * callback and as the socket's 'readable' listener, so each 'readable' event
 * counts as a completed packet. On TLS every record is announced on its own,
 * so the counter is driven to 0: aedes reads and dispatches every packet as
 * it arrives and nothing bounds the mqemitter queue (159k messages deep in a
 * 200k run). Here the socket is read again only when every packet of the
 * previous chunk has completed, which also lets the per-device rate limit
 * (a held authorizePublish callback) really hold the device's reads.
 *
 * Relies on aedes Client internals `conn`, `_parser.parse`, `_parsingBatch`,
 * `_nextBatch` (looked up per packet by aedes' enqueue/dequeue), `_paused`,
 * `closed`, `resume()`. Call it synchronously right after aedes.handle(socket).
 */
interface ClientInternals {
  conn: NodeJS.ReadableStream & { read (size?: number | null): Buffer | null, listeners (event: string): unknown[] }
  closed: boolean
  _paused?: boolean
  _parsingBatch: number
  _parser: { parse (buf: Buffer): unknown }
  _nextBatch: (err?: Error | null) => void
  emit (event: string, ...args: unknown[]): boolean
  resume (): void
}

/**
 * Exact read accounting for one aedes client: the socket is read again only
 * when every packet of the previous chunk has completed. Returns false (and
 * changes nothing) if aedes' internals are not the expected shape.
 */
export function installReadBackpressure (client: unknown): boolean {
  const c = client as ClientInternals
  const conn = c?.conn
  const original = c?._nextBatch
  if (typeof original !== 'function' || typeof c._parsingBatch !== 'number' || typeof c._parser?.parse !== 'function' ||
      !conn || !conn.listeners('readable').includes(original)) {
    process.emitWarning('aedes client internals changed; read back-pressure not installed', { code: 'PG_AEDES_BACKPRESSURE' })
    return false
  }
  // Installed before the first 'readable' (same tick as aedes.handle): nothing parsed yet.
  c._parsingBatch = 0

  function readChunk (): void {
    if (c._paused || c.closed || c._parsingBatch > 0) return
    const buf = conn.read(null)
    if (buf) c._parser.parse(buf)
  }

  // per-packet completion (aedes' enqueue/dequeue read client._nextBatch for each packet)
  function packetDone (err?: Error | null): void {
    if (err) {
      c.emit('error', err)
      return
    }
    c._parsingBatch--
    if (c._parsingBatch <= 0) {
      c._parsingBatch = 0
      readChunk()
    }
  }
  // The first packet is the CONNECT. aedes calls client.resume() once the CONNACK is
  // out (connect.js emptyQueue) so that PUBACKs for the offline queue it then flushes
  // are read; stock aedes gets that from resume()'s extra nextBatch() call. Here
  // resume() settles the CONNECT's slot and its later completion is not counted twice.
  let connectState: 'unread' | 'in-flight' | 'settled' = 'unread'
  function connectDone (err?: Error | null): void {
    if (err) return packetDone(err)
    if (connectState === 'settled') return
    connectState = 'settled'
    packetDone()
  }
  Object.defineProperty(c, '_nextBatch', {
    configurable: true,
    enumerable: true,
    get () {
      if (connectState !== 'unread') return packetDone
      connectState = 'in-flight'
      return connectDone
    },
    set () { /* aedes assigns it only in the Client constructor */ }
  })
  c.resume = function resume (): void {
    c._paused = false
    if (connectState === 'in-flight') connectDone()
    else readChunk()
  }
  // new data: read it only if no packet of the previous chunk is still in flight
  conn.removeListener('readable', original)
  conn.on('readable', readChunk)
  return true
}
