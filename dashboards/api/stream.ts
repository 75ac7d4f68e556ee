/**
 * GET /api/stream: Server-Sent Events of alert changes (`alert`) and the
 * fleet summary every 5 s (`fleet`), for the dashboard's live views. Read
 * with fetch() and the bearer header (EventSource cannot send headers, and
 * a token in the URL would end up in access logs). A client that cannot
 * keep up (over 1 MiB unsent) is dropped rather than buffered without
 * bound; it reconnects and reloads.
 */
import type { ServerResponse } from 'node:http'
import type { FastifyInstance } from 'fastify'
import type { ApiSource } from './source.ts'

const FLEET_EVERY_MS = 5_000
const KEEPALIVE_EVERY_MS = 15_000
const MAX_BACKLOG_BYTES = 1024 * 1024

export function registerStream (app: FastifyInstance, source: ApiSource): void {
  const clients = new Set<ServerResponse>()
  const send = (client: ServerResponse, event: string, data: unknown): void => {
    if (client.writableLength > MAX_BACKLOG_BYTES) {
      clients.delete(client)
      client.destroy()
      return
    }
    client.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`)
  }
  const unsubscribe = source.onAlertChange((change) => {
    for (const client of clients) send(client, 'alert', change)
  })
  const fleetTimer = setInterval(() => {
    if (clients.size === 0) return
    const summary = source.fleet.summary()
    for (const client of clients) send(client, 'fleet', summary)
  }, FLEET_EVERY_MS)
  const keepAlive = setInterval(() => { for (const client of clients) client.write(': keep-alive\n\n') }, KEEPALIVE_EVERY_MS)
  fleetTimer.unref()
  keepAlive.unref()
  app.addHook('onClose', async () => {
    unsubscribe()
    clearInterval(fleetTimer)
    clearInterval(keepAlive)
    for (const client of clients) client.end()
  })

  app.get('/api/stream', {
    config: { role: 'viewer' },
    schema: { summary: 'Live alert changes and fleet summaries (text/event-stream)', produces: ['text/event-stream'] },
  }, (request, reply) => {
    reply.hijack()
    const client = reply.raw
    client.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      connection: 'keep-alive',
    })
    client.write('retry: 2000\n\n')
    clients.add(client)
    send(client, 'fleet', source.fleet.summary())
    request.raw.on('close', () => clients.delete(client))
  })
}
