/**
 * Bounds on the API's HTTP connections. Each is a file descriptor of the
 * process, and in `placeguard up` the broker and the stores draw on the
 * same descriptors: 19,500 idle connections to the dashboard port (measured)
 * took them all, and the process could not open a file. Without a token a
 * peer gets no further than a 401, but a connection costs a descriptor
 * before any request is read, so the bounds hold at accept:
 *
 * - at most `maxConnections` at once (Node's `server.maxConnections`: a
 *   connection beyond it is closed at accept);
 * - at most `maxConnectionsPerAddress` from one address (IPv6: one /64), so
 *   one peer cannot take the whole table from the operators;
 * - a request's headers within 10 s and the whole request within 30 s, so a
 *   slow sender (slowloris) gives its slot back quickly.
 *
 * Refusals are logged at most once per 10 s, with their count; those held
 * back by the period are logged when it ends.
 */
import type { Server } from 'node:http'
import type { Socket } from 'node:net'
import { addressKey } from '../../shared/address-key.ts'
import type { Logger } from '../../shared/logger.ts'

export interface HttpConnectionLimits {
  maxConnections: number
  maxConnectionsPerAddress: number
}

/** The time a client has to send its request headers (Node's default is 60 s). */
export const HEADERS_TIMEOUT_MS = 10_000
/** The time a client has to send its whole request, body included (Node's default is 300 s). */
export const REQUEST_TIMEOUT_MS = 30_000
const REFUSAL_LOG_EVERY_MS = 10_000

export function limitConnections (server: Server, limits: HttpConnectionLimits, logger: Logger): void {
  server.maxConnections = limits.maxConnections
  server.headersTimeout = HEADERS_TIMEOUT_MS
  server.requestTimeout = REQUEST_TIMEOUT_MS
  const perAddress = new Map<string, number>()
  let refused = { total: 0, perAddress: 0 }
  let loggedAt = -Infinity
  let held: NodeJS.Timeout | undefined
  const log = (): void => {
    held = undefined
    loggedAt = performance.now()
    logger.warn({ refused, maxConnections: limits.maxConnections, maxConnectionsPerAddress: limits.maxConnectionsPerAddress },
      'HTTP connections refused at accept: the API holds httpMaxConnections at once, httpMaxConnectionsPerAddress from one address')
    refused = { total: 0, perAddress: 0 }
  }
  const refuse = (kind: 'total' | 'perAddress'): void => {
    refused[kind]++
    const sinceLog = performance.now() - loggedAt
    if (sinceLog >= REFUSAL_LOG_EVERY_MS) return log()
    // Held back by the period, and said when it ends: a burst that stops inside it is still counted whole.
    held ??= setTimeout(log, REFUSAL_LOG_EVERY_MS - sinceLog).unref()
  }
  server.once('close', () => clearTimeout(held))
  // Beyond server.maxConnections Node closes the socket itself and says so here.
  server.on('drop', () => refuse('total'))
  server.on('connection', (socket: Socket) => {
    const key = addressKey(socket.remoteAddress)
    const open = perAddress.get(key) ?? 0
    if (open >= limits.maxConnectionsPerAddress) {
      socket.destroy()
      refuse('perAddress')
      return
    }
    perAddress.set(key, open + 1)
    socket.once('close', () => {
      const left = (perAddress.get(key) ?? 1) - 1
      if (left <= 0) perAddress.delete(key)
      else perAddress.set(key, left)
    })
  })
}
