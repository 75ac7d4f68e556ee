/**
 * npm run bench:adversarial — what a good device gets from the broker while
 * it is attacked (issue 11). The broker runs as a child process on a temp
 * fleet; each attack (test/helpers/floods.ts) runs for --seconds while one
 * good device, from 127.0.0.1 on its own certificate, keeps connecting and
 * publishing QoS 1. Attackers use other 127.x addresses.
 *
 * Printed: attack | attack attempts/s achieved | good-device connects ok |
 * publishes acked | PUBACK p99 during the attack | PUBACK p99 at baseline;
 * then the HTTP API under token brute force: guesses/s, how they were
 * answered, and the good token's requests and p99 against its baseline.
 * Figures drift on a shared machine; compare rows of one run.
 *
 *   npm run bench:adversarial -- [--seconds 10] [--max-connections 1200] [--attacks 2,3]
 */
import { parseArgs } from 'node:util'
import { createCollectorService } from '../app/collector-service.ts'
import { apiSourceFrom, loadConfig } from '../app/index.ts'
import { startApiServer } from '../dashboards/index.ts'
import { createLogger } from '../shared/logger.ts'
import { startBrokerProcess } from '../test/helpers/broker-process.ts'
import { createTestFleet } from '../test/helpers/fleet.ts'
import {
  type Attack, captureClientHello, connectStorm, handshakeStorm, httpGet, idleSockets, loopbackAddresses, percentile,
  probeGoodDevice, type ProbeResult, slowHandshakes, subscriptionBomb, tokenBruteForce, topicDepthBomb,
} from '../test/helpers/floods.ts'
import { deviceContext } from '../test/helpers/raw-mqtt.ts'
import { printTable, round, saveResults } from './lib/report.ts'

const { values } = parseArgs({ options: {
  seconds: { type: 'string', default: '10' },
  // Above the 1,000 slots a broker may reserve for authenticated sessions.
  'max-connections': { type: 'string', default: '1200' },
  // 1-based rows of the attack table to run, e.g. --attacks 2,3 (default: all).
  attacks: { type: 'string' },
} })
const SECONDS = Number(values.seconds)
const MAX_CONNECTIONS = Number(values['max-connections'])
const STORMERS = Array.from({ length: 16 }, (_, i) => `storm-${i + 1}`)
const topic = (id: string): string => `places/block-a/housing/${id}/telemetry`

const attacks: Array<(port: number) => Attack> = [
  (port) => idleSockets(port, MAX_CONNECTIONS + 50),
  (port) => idleSockets(port, MAX_CONNECTIONS + 50, loopbackAddresses(64, 2)),
  (port) => slowHandshakes(port, MAX_CONNECTIONS + 50, hello),
  (port) => handshakeStorm(port, context('storm-1'), 16, ['127.0.0.7']),
  (port) => handshakeStorm(port, context('storm-1'), 16, loopbackAddresses(64, 8)),
  (port) => connectStorm(port, STORMERS.map((deviceId) => ({ deviceId, context: context(deviceId) }))),
  (port) => subscriptionBomb(port, { deviceId: 'bomb-1', context: context('bomb-1'), topic: topic('bomb-1') }, 5_000),
  (port) => topicDepthBomb(port, { deviceId: 'depth-1', context: context('depth-1'), topic: topic('depth-1') }, 5_000),
]
const chosen = values.attacks === undefined ? attacks : values.attacks.split(',').map((n) => {
  const row = Number(n)
  if (!Number.isInteger(row) || row < 1 || row > attacks.length) throw new Error(`--attacks: "${n}" is not a row of the attack table (1 to ${attacks.length})`)
  return attacks[row - 1]!
})

const fleet = await createTestFleet(['good-1', 'bomb-1', 'depth-1', ...STORMERS].map((deviceId) => ({ deviceId, kind: 'housing', site: 'block-a' })))
// The default publish rate limit would time the good device, not the attack.
const startBroker = () => startBrokerProcess(fleet, { maxConnections: MAX_CONNECTIONS, handshakeTimeoutMs: 4_000, connectTimeoutMs: 4_000, publishRatePerSec: 0 })
// A fresh broker per attack: what one attack leaves behind must not colour the next row.
let broker = await startBroker()
const context = (id: string) => deviceContext(fleet, fleet.device(id))

/** The good device, round after round (5 publishes each), for `seconds`. */
async function probeFor (seconds: number): Promise<ProbeResult> {
  const total: ProbeResult = { connects: 0, connectsOk: 0, publishes: 0, acked: 0, ackMs: [], errors: [] }
  const until = performance.now() + seconds * 1_000
  while (performance.now() < until) {
    const round = await probeGoodDevice(broker.url, fleet, 'good-1', topic('good-1'), 1, 5)
    total.connects += round.connects
    total.connectsOk += round.connectsOk
    total.publishes += round.publishes
    total.acked += round.acked
    total.ackMs.push(...round.ackMs)
    total.errors.push(...round.errors)
  }
  return total
}

const baseline = await probeFor(SECONDS)
const baselineP99 = percentile(baseline.ackMs, 99)
const hello = await captureClientHello(context('storm-1'))

const rows: Array<Record<string, string | number>> = [row('none (baseline)', 0, baseline)]
for (const start of chosen) {
  await broker.stop()
  broker = await startBroker()
  const attack = start(broker.port)
  const began = performance.now()
  await buildUp(attack)
  const during = await probeFor(SECONDS)
  const rate = attack.attempts() / ((performance.now() - began) / 1_000)
  await attack.stop()
  rows.push(row(attack.name, rate, during))
  // A good device that failed says why: the table alone cannot tell a refusal from a timeout.
  const why = [...new Set(during.errors.map((error) => error.replace(/^(connect|publish) [\d.]+: /, '$1: ')))]
  if (why.length > 0) process.stderr.write(`${attack.name}: the good device's failures: ${why.slice(0, 5).join('; ')}\n`)
  if (broker.exit()) rows.push({ attack: `broker exited: ${JSON.stringify(broker.exit())}` })
}
const apiRows = await benchApi()
await broker.stop()
fleet.cleanup()

printTable(rows)
process.stdout.write('\n')
printTable(apiRows)
process.stdout.write(`results: ${saveResults('adversarial', { seconds: SECONDS, maxConnections: MAX_CONNECTIONS, rows, apiRows })}\n`)

/**
 * The HTTP API (a collector on the same broker) under token guessing from
 * 127.0.0.9, while the operator's good token is used from 127.0.0.1.
 */
async function benchApi (): Promise<Array<Record<string, string | number>>> {
  const token = 'operator-token-0123456789abcdef'
  const logger = createLogger({ level: 'silent' })
  const config = loadConfig({ env: { PLACEGUARD_API_TOKENS: `${token}:operator` }, flags: { dataDir: fleet.dataDir } })
  const service = createCollectorService(config, broker.url, logger)
  await service.start()
  const api = await startApiServer(apiSourceFrom(service, config.apiTokens), { host: '127.0.0.1', port: 0, logger })
  const operator = async (): Promise<{ ok: number, total: number, ms: number[] }> => {
    const result = { ok: 0, total: 0, ms: [] as number[] }
    const until = performance.now() + SECONDS * 1_000
    while (performance.now() < until) {
      const started = performance.now()
      const status = await httpGet(api.port, '/api/fleet', token, '127.0.0.1')
      result.total++
      if (status === 200) { result.ok++; result.ms.push(performance.now() - started) }
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    return result
  }
  const base = await operator()
  const attack = tokenBruteForce(api.port, 8)
  const began = performance.now()
  const during = await operator()
  const rate = attack.attempts() / ((performance.now() - began) / 1_000)
  await attack.stop()
  await api.close()
  await service.stop()
  const p99 = (ms: number[]) => { const value = percentile(ms, 99); return value === undefined ? '-' : round(value) }
  return [{
    attack: attack.name, 'guesses/s': round(rate), 'guess answers': JSON.stringify(attack.statuses),
    'good-token requests ok': `${during.ok}/${during.total}`, 'good p99 ms': p99(during.ms), 'baseline p99 ms': p99(base.ms),
  }]
}

/**
 * Lets an attack build up: 1 s, or for one that holds sockets, until it holds
 * the broker's limit (up to 10 s) and 2 s more for the broker to accept its
 * backlog. Probing earlier lets the good device take a slot before the flood
 * and keep it by reconnecting at once, which measures the race, not the defence.
 */
async function buildUp (attack: Attack): Promise<void> {
  const began = performance.now()
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, 100))
    const elapsed = performance.now() - began
    if (elapsed >= 1_000 && attack.holding() < 100) return
    if (attack.holding() >= MAX_CONNECTIONS || elapsed >= 10_000) break
  }
  await new Promise((resolve) => setTimeout(resolve, 2_000))
}

function row (name: string, rate: number, probe: ProbeResult): Record<string, string | number> {
  const p99 = percentile(probe.ackMs, 99)
  return {
    attack: name,
    'attempts/s': round(rate),
    'connects ok': `${probe.connectsOk}/${probe.connects}`,
    'publishes acked': `${probe.acked}/${probe.publishes}`,
    'PUBACK p99 ms': p99 === undefined ? '-' : round(p99),
    'baseline p99 ms': baselineP99 === undefined ? '-' : round(baselineP99),
  }
}
