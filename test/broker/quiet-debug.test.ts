import { createRequire } from 'node:module'
import { PassThrough } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { quietDebugInstalled } from '../../broker/quiet-debug.ts'

const require = createRequire(import.meta.url)
const packetRequire = createRequire(createRequire(require.resolve('aedes')).resolve('mqtt-packet'))
const mqttPacket = packetRequire('mqtt-packet') as {
  parser: () => { on: (event: string, listener: (packet: unknown) => void) => void, parse: (buf: Buffer) => number }
  writeToStream: (packet: object, stream: NodeJS.WritableStream) => boolean
}

describe('quiet debug loggers for mqtt-packet', () => {
  it('puts a parser and a writer without debug calls where aedes looks them up, and leaves the module cache as it was', () => {
    expect(quietDebugInstalled).toBe(true)
    // The originals stay in the cache for anything else that requires them.
    expect(mqttPacket.parser).not.toBe(packetRequire('./parser.js').parser)
    expect(mqttPacket.writeToStream).not.toBe(packetRequire('./writeToStream.js'))
    const debug = packetRequire('debug') as (namespace: string) => { toString: () => string }
    expect(debug('mqtt-packet:parser').toString()).toContain('enabled')
  })

  it('writes and parses packets as before', async () => {
    const stream = new PassThrough()
    const packet = { cmd: 'publish', topic: 'places/a/b/c/telemetry', payload: Buffer.from('{"t":1}'), qos: 1, messageId: 7, retain: false, dup: false }
    expect(mqttPacket.writeToStream(packet, stream)).toBe(true)
    await new Promise((resolve) => setImmediate(resolve)) // the writer corks until the next tick
    const parsed: unknown[] = []
    const parser = mqttPacket.parser()
    parser.on('packet', (p) => parsed.push(p))
    parser.parse(stream.read() as Buffer)
    expect(parsed).toMatchObject([{ cmd: 'publish', topic: 'places/a/b/c/telemetry', qos: 1, messageId: 7 }])
    expect((parsed[0] as { payload: Buffer }).payload.toString()).toBe('{"t":1}')
  })
})
