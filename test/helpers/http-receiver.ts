/**
 * A real HTTP server on loopback standing in for a SOC endpoint: records
 * every request, answers as the test says, and can go down and come back
 * on the same port.
 */
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { expect } from 'vitest'
import type { Delivery, Sink } from '../../delivery/index.ts'

export interface ReceivedRequest { headers: IncomingHttpHeaders, body: string, atMs: number, path: string }

export type Answer = (request: ReceivedRequest, index: number, response: ServerResponse) => void

export interface HttpReceiver {
  url: string
  port: number
  requests: ReceivedRequest[]
  /** How the next requests are answered (default 200). */
  answer: Answer
  stop: () => Promise<void>
  /** Listens again on the same port. */
  start: () => Promise<void>
}

export const ok: Answer = (_request, _index, response) => { response.writeHead(200).end('ok') }

export async function startHttpReceiver (answer: Answer = ok, port = 0): Promise<HttpReceiver> {
  let server: Server | undefined
  const receiver: HttpReceiver = {
    url: '', port, requests: [], answer,
    start: async () => {
      server = createServer((request, response) => {
        const chunks: Buffer[] = []
        request.on('data', (chunk: Buffer) => chunks.push(chunk))
        request.on('end', () => {
          const received = { headers: request.headers, body: Buffer.concat(chunks).toString('utf8'), atMs: Date.now(), path: request.url ?? '/' }
          receiver.requests.push(received)
          receiver.answer(received, receiver.requests.length - 1, response)
        })
      })
      await new Promise<void>((resolve) => server!.listen(receiver.port, '127.0.0.1', resolve))
      receiver.port = (server.address() as AddressInfo).port
      receiver.url = `http://127.0.0.1:${receiver.port}/hook`
    },
    stop: async () => {
      if (!server) return
      server.closeAllConnections()
      await new Promise<void>((resolve) => server!.close(() => resolve()))
      server = undefined
    },
  }
  await receiver.start()
  return receiver
}

/** Sends `deliveries` through `sink`, expects success in exactly one request to `receiver`, and returns that request's body. */
export async function soleRequestBody (receiver: HttpReceiver, sink: Sink, deliveries: Delivery[]): Promise<string> {
  const before = receiver.requests.length
  expect(await sink.send(deliveries)).toEqual({ outcome: 'success' })
  expect(receiver.requests.length - before).toBe(1)
  return receiver.requests.at(-1)!.body
}
