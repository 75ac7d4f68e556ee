import { Writable } from 'node:stream'
import mqtt, { type MqttClient } from 'mqtt'
import { PlaceGuardBroker, type BrokerLimits, type BrokerOptions, type SecurityEvent } from '../../broker/index.ts'
import type { Clock } from '../../shared/clock.ts'
import { createLogger } from '../../shared/logger.ts'
import { afterAll, beforeAll } from 'vitest'
import { createTestFleet, read, type TestFleet } from './fleet.ts'

export interface RunningBroker {
  broker: PlaceGuardBroker
  port: number
  url: string
  events: SecurityEvent[]
  /** Resolves with the first event (seen before or after the call) that matches. */
  waitForEvent: (match: (event: SecurityEvent) => boolean, timeoutMs?: number) => Promise<SecurityEvent>
  logs: string[]
  close: () => Promise<void>
}

export async function startBroker (fleet: TestFleet, limits: Partial<BrokerLimits> = {}, options: { quarantineFile?: string, sessionOwnersFile?: string, clock?: Clock, supplierGrant?: BrokerOptions['supplierGrant'] } = {}): Promise<RunningBroker> {
  const logs: string[] = []
  const destination = new Writable({ write (chunk, _encoding, done) { logs.push(String(chunk)); done() } })
  const broker = new PlaceGuardBroker({
    tls: { caCert: fleet.paths.caCert, serverCert: fleet.paths.serverCert, serverKey: fleet.paths.serverKey, crl: fleet.paths.crl },
    host: '127.0.0.1',
    port: 0,
    limits: { crlPollMs: 200, ...limits },
    logger: createLogger({ level: 'debug', destination }),
    quarantineFile: options.quarantineFile,
    sessionOwnersFile: options.sessionOwnersFile,
    clock: options.clock,
    supplierGrant: options.supplierGrant,
  })
  const events: SecurityEvent[] = []
  const waiters = new Set<{ match: (e: SecurityEvent) => boolean, resolve: (e: SecurityEvent) => void }>()
  broker.on('security-event', (event) => {
    events.push(event)
    for (const waiter of waiters) if (waiter.match(event)) { waiters.delete(waiter); waiter.resolve(event) }
  })
  const { port } = await broker.listen()
  return {
    broker, port, url: `mqtts://127.0.0.1:${port}`, events, logs,
    waitForEvent: (match, timeoutMs = 10_000) => {
      const seen = events.find(match)
      if (seen) return Promise.resolve(seen)
      return new Promise((resolve, reject) => {
        const waiter = { match, resolve: (e: SecurityEvent) => { clearTimeout(timer); resolve(e) } }
        const timer = setTimeout(() => { waiters.delete(waiter); reject(new Error(`no matching security event within ${timeoutMs} ms; saw ${events.map((e) => e.type).join(', ')}`)) }, timeoutMs)
        waiters.add(waiter)
      })
    },
    close: () => broker.close(),
  }
}

/** An mqtt.js client with a certificate from the fleet; resolves once CONNACK arrives. */
export function connectClient (url: string, fleet: TestFleet, files: { cert: string, key: string }, clientId: string,
  options: mqtt.IClientOptions = {}): Promise<MqttClient> {
  const client = mqtt.connect(url, {
    ca: read(fleet.paths.caCert), cert: read(files.cert), key: read(files.key), clientId,
    reconnectPeriod: 0, connectTimeout: 5_000, ...options,
  })
  return new Promise((resolve, reject) => {
    client.once('connect', () => resolve(client))
    client.once('error', (error) => { client.end(true); reject(error) })
    client.once('close', () => reject(new Error('closed before CONNACK')))
  })
}

export function collectorFiles (fleet: TestFleet): { cert: string, key: string } {
  return { cert: fleet.paths.collectorCert, key: fleet.paths.collectorKey }
}

/** Polls `condition` (which may answer a Promise: the alert book over PostgreSQL) every 20 ms until it holds. */
export async function waitFor (condition: () => boolean | Promise<boolean>, timeoutMs = 10_000, what: string | (() => string) = 'condition'): Promise<void> {
  const started = Date.now()
  while (!await condition()) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'function' ? what() : what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/**
 * A fresh fleet PKI and a broker on it for the whole test file, torn down
 * after it; read `.fleet` and `.broker` inside the tests.
 */
export function useFleetWithBroker (limits: Partial<BrokerLimits> = {}): { readonly fleet: TestFleet, readonly broker: RunningBroker } {
  let fleet: TestFleet | undefined
  let broker: RunningBroker | undefined
  beforeAll(async () => {
    fleet = await createTestFleet()
    broker = await startBroker(fleet, limits)
  })
  afterAll(async () => {
    await broker?.close()
    fleet?.cleanup()
  })
  return {
    get fleet () { return fleet! },
    get broker () { return broker! },
  }
}
