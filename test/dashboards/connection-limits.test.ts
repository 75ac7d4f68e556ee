import { createServer, type Server } from 'node:http'
import { connect, type AddressInfo, type Socket } from 'node:net'
import { Writable } from 'node:stream'
import { afterEach, describe, expect, it } from 'vitest'
import { limitConnections } from '../../dashboards/api/connection-limits.ts'
import { createLogger } from '../../shared/logger.ts'

const servers: Server[] = []
const sockets: Socket[] = []
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy()
  for (const server of servers.splice(0)) await new Promise((resolve) => server.close(resolve))
})

/** Opens `count` connections from `localAddress` and resolves with how many the server closed within 200 ms. */
async function closedOf (port: number, count: number, localAddress: string): Promise<number> {
  let closed = 0
  await Promise.all(Array.from({ length: count }, () => new Promise<void>((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, localAddress })
    sockets.push(socket)
    socket.on('error', () => {})
    socket.once('close', () => { closed++ })
    socket.once('connect', () => resolve())
  })))
  await new Promise((resolve) => setTimeout(resolve, 200))
  return closed
}

describe('the HTTP connection bounds', () => {
  it('close what is past the per-address and the total caps at accept, and log the refusals with their count, a burst\'s whole count included', { timeout: 20_000 }, async () => {
    const lines: Array<{ refused: { total: number, perAddress: number } }> = []
    const logger = createLogger({ level: 'warn', destination: new Writable({ write (chunk, _e, done) { lines.push(JSON.parse(String(chunk))); done() } }) })
    const server = createServer((_request, response) => response.end())
    servers.push(server)
    limitConnections(server, { maxConnections: 5, maxConnectionsPerAddress: 2 }, logger)
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const { port } = server.address() as AddressInfo
    // Five from one address: two kept, three closed; the first refusal is logged at once, the other two held back.
    expect(await closedOf(port, 5, '127.0.4.1')).toBe(3)
    expect(lines.map((line) => line.refused)).toEqual([{ total: 0, perAddress: 1 }])
    // Four from two more addresses: the table of five is full after three of them.
    expect(await closedOf(port, 2, '127.0.4.2') + await closedOf(port, 2, '127.0.4.3')).toBe(1)
    // Once the 10 s are over, what was held back is logged, though no refusal came since.
    await new Promise((resolve) => setTimeout(resolve, 10_000))
    expect(lines.map((line) => line.refused)).toEqual([{ total: 0, perAddress: 1 }, { total: 1, perAddress: 2 }])
  })
})
