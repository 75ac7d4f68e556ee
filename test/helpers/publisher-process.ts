/**
 * A device that publishes fast, in a process of its own so that the broker
 * under test cannot slow it down by sharing its event loop. Each publish
 * waits for the previous write and one turn of the loop, so every message
 * travels in a TLS record of its own.
 *
 *   node publisher-process.ts <url> <ca> <cert> <key> <clientId> <topic> <count>
 */
import { readFileSync } from 'node:fs'
import mqtt from 'mqtt'

const [url, ca, cert, key, clientId, topic, countText] = process.argv.slice(2) as [string, string, string, string, string, string, string]
const count = Number(countText)
const client = mqtt.connect(url, { ca: readFileSync(ca), cert: readFileSync(cert), key: readFileSync(key), clientId, reconnectPeriod: 0 })
client.once('error', (error) => { console.error(error.message); process.exit(1) })
client.once('connect', () => {
  let sent = 0
  const next = (): void => {
    if (sent === count) { client.end(false, {}, () => process.exit(0)); return }
    const payload = Buffer.alloc(64)
    payload.writeUInt32BE(sent++, 0)
    client.publish(topic, payload, { qos: 0 }, () => setImmediate(next))
  }
  next()
})
