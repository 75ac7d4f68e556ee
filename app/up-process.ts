/**
 * `up`: the single-machine deployment in one process. Creates the fleet
 * PKI on first run (in a child, so the CA key never sits in this
 * network-facing process), starts the broker, the collector (into InfluxDB
 * or the embedded store), the HTTP API and dashboard and, when asked, a
 * simulated demo fleet. Without API tokens configured it makes one
 * operator token for the data directory (`<data-dir>/demo-token`, 0600),
 * so the demo is one command and still needs a token.
 */
import { randomBytes } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { loadScenario, runSimulation } from '../agent-sim/index.ts'
import { startApiServer, type RunningApi } from '../dashboards/index.ts'
import { pkiPaths } from '../pki/index.ts'
import type { Config } from './config.ts'
import { writeFileAtomic } from '../shared/files.ts'
import type { Logger } from '../shared/logger.ts'
import { apiSourceFrom } from './api-source.ts'
import { runPlaceguard, startBrokerProcess, type BrokerProcess } from './broker-process.ts'
import { createCollectorService, type CollectorService } from './collector-service.ts'

export interface DemoFleet {
  devices: number
  /** A scenario file of incidents to inject (agent-sim/scenarios/*.yaml). */
  scenarioFile?: string
  intervalMs: number
}

export interface UpProcess {
  broker: BrokerProcess
  collector: CollectorService
  api: RunningApi
  /** The token made for this data directory when none is configured. */
  demoToken: string | undefined
  stop: () => Promise<void>
}

export async function startUp (config: Config, logger: Logger, demo?: DemoFleet): Promise<UpProcess> {
  const paths = pkiPaths(config.dataDir)
  if (!existsSync(paths.caCert)) {
    await runPlaceguard(['--data-dir', config.dataDir, 'pki', 'init'])
    logger.info({ dir: paths.dir }, 'fleet PKI created')
  }
  const broker = await startBrokerProcess(config, logger)
  broker.broker.on('security-event', (event) => {
    if (event.type === 'connect' || event.type === 'disconnect') logger.debug({ event }, `${event.type}: ${event.deviceId ?? 'unknown'}`)
  })
  const host = config.mqttHost === '0.0.0.0' ? '127.0.0.1' : config.mqttHost
  const brokerUrl = `mqtts://${host}:${broker.address.port}`
  const collector = createCollectorService(config, brokerUrl, logger)
  await collector.start()
  const demoTokenMade = config.apiTokens.length > 0 ? undefined : demoToken(config)
  const tokens = demoTokenMade === undefined ? config.apiTokens : [{ token: demoTokenMade, role: 'operator' as const }]
  const api = await startApiServer(apiSourceFrom(collector, tokens), { host: config.httpHost, port: config.httpPort, maxConnections: config.httpMaxConnections, maxConnectionsPerAddress: config.httpMaxConnectionsPerAddress, logger })
  logger.info({ url: api.url }, 'HTTP API and dashboard listening')
  const abort = new AbortController()
  let simulation: Promise<unknown> = Promise.resolve()
  if (demo !== undefined && demo.devices > 0) {
    const scenario = demo.scenarioFile ? loadScenario(demo.scenarioFile) : undefined
    logger.info({ devices: demo.devices, scenario: scenario?.name }, 'starting the simulated demo fleet')
    simulation = runSimulation({
      dataDir: config.dataDir, brokerUrl, devices: demo.devices,
      intervalMs: demo.intervalMs, durationMs: 0, scenario, seed: 1, signal: abort.signal,
      onPhase: (phase, total) => {
        if (phase !== 'run') return logger.info({ total }, `demo fleet: ${phase}`)
        logger.info('demo fleet connected and publishing')
        collector.refreshInventory() // the demo fleet's identities were just issued: into the fleet view and cert-expiry
      },
    }).then((summary) => logger.info({ summary }, 'demo fleet stopped'), (error: Error) => logger.error({ err: error.message }, 'demo fleet failed'))
  }
  return {
    broker, collector, api, demoToken: demoTokenMade,
    stop: async () => {
      // The demo fleet goes silent because we stop it, not because its devices failed.
      if (demo) collector.detection.stopTimeRules()
      abort.abort()
      await simulation
      await api.close()
      await collector.stop()
      await broker.stop()
    },
  }
}

/** The demo token of this data directory: made once, kept 0600, given out at each start. */
function demoToken (config: Config): string {
  const file = join(config.dataDir, 'demo-token')
  try {
    return readFileSync(file, 'utf8').trim()
  } catch {
    const token = randomBytes(24).toString('base64url')
    writeFileAtomic(file, `${token}\n`, 0o600)
    return token
  }
}
