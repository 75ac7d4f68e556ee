/**
 * API token brute force (issue 11, STRIDE S and D): an attacker on another
 * address guesses bearer tokens as fast as it can; the operator's good token
 * keeps working throughout, and the attacker is refused (429) well before it
 * could matter, by the limit on failed authentication per address.
 */
import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { useCollectorApi } from '../helpers/collector-api.ts'
import { useFleetWithBroker } from '../helpers/broker.ts'
import { httpGet } from '../helpers/floods.ts'
import { pool } from '../helpers/raw-mqtt.ts'

const GOOD = 'operator-token-0123456789abcdef'
const ATTACKER_ADDRESS = '127.0.0.9'
const GUESSES = 500
const setup = useFleetWithBroker()
const running = useCollectorApi(setup, `${GOOD}:operator`)


const get = (path: string, token: string, localAddress: string): Promise<number> => httpGet(running.api.port, path, token, localAddress)

describe('API token brute force', () => {
  it(`keeps a good token working while another address makes ${GUESSES} guesses, and refuses the guesser`, async () => {
    const attacker: number[] = []
    const good: number[] = []
    let done = false
    const operator = (async () => {
      while (!done) {
        good.push(await get('/api/fleet', GOOD, '127.0.0.1'))
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
    })()
    await pool(GUESSES, 8, async () => { attacker.push(await get('/api/fleet', randomBytes(16).toString('hex'), ATTACKER_ADDRESS)) })
    done = true
    await operator
    const counts = (values: number[]) => values.reduce<Record<number, number>>((acc, v) => ({ ...acc, [v]: (acc[v] ?? 0) + 1 }), {})
    const summary = `attacker ${JSON.stringify(counts(attacker))}; good token ${JSON.stringify(counts(good))}`
    expect(attacker.filter((status) => status === 200), summary).toEqual([])
    expect(good.length, summary).toBeGreaterThan(0)
    expect(good.filter((status) => status !== 200), summary).toEqual([])
    // Refused before the guesses run out: the per-address limit on failed authentication.
    expect(attacker.filter((status) => status === 429).length, summary).toBeGreaterThan(0)
    // And still refused at the end, not let back in while it keeps guessing.
    expect(attacker.at(-1), summary).toBe(429)
    // After the attack the operator is still served.
    expect(await get('/api/fleet', GOOD, '127.0.0.1')).toBe(200)
  }, 120_000)
})
