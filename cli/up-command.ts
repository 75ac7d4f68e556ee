import type { Command } from 'commander'
import { loadScenario, runSimulation } from '../agent-sim/index.ts'
import { randomBytes } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { apiSourceFrom, createCollectorService } from '../app/index.ts'
import { startApiServer } from '../dashboards/index.ts'
import type { Config } from '../shared/config.ts'
import { writeFileAtomic } from '../shared/files.ts'
import { pkiPaths } from '../pki/index.ts'
import { parseDuration } from '../shared/duration.ts'
import { createLogger } from '../shared/logger.ts'
import { brokerFor, configFrom, keepCrlFresh, runPlaceguard, stopOnSignals, withListenOptions } from './broker-command.ts'
import { startLiveView } from './live-view.ts'
import { wholeNumber } from './options.ts'

interface UpFlags { mqttPort?: number, mqttHost?: string, httpPort?: number, httpHost?: string, config?: string, demoDevices: number, demoScenario?: string, demoInterval: string }

/**
 * `placeguard up`: the single-machine deployment in one process. Creates
 * the fleet PKI on first run, starts the broker and the collector (into
 * InfluxDB, or the embedded store), the HTTP API and dashboard and, with
 * --demo-devices, a simulated fleet against it. Without
 * PLACEGUARD_API_TOKENS it makes one operator token for this data
 * directory (kept in <data-dir>/demo-token, 0600) and prints it with the
 * dashboard URL, so the demo is one command and still needs a token.
 */
export function registerUpCommand (program: Command): void {
  withListenOptions(program.command('up')
    .description('run PlaceGuard on one machine: PKI on first run, broker, collector, optional simulated demo fleet'))
    .option('--http-port <port>', 'HTTP API and dashboard port (default 8080)', wholeNumber('--http-port'))
    .option('--http-host <host>', 'address the HTTP API listens on (default 0.0.0.0)')
    .option('--demo-devices <n>', 'also simulate this many devices against the broker', wholeNumber('--demo-devices'), 0)
    .option('--demo-scenario <file>', 'incidents to inject into the demo fleet (agent-sim/scenarios/*.yaml)')
    .option('--demo-interval <duration>', 'telemetry interval of the demo fleet', '5s')
    .action(async (options: UpFlags, command: Command) => {
      const config = configFrom(options, command)
      // A person at a terminal gets the live view (cli/live-view.ts) and the JSON log goes to a file;
      // anything else (a pipe, a service manager, CI) gets JSON lines on stdout as before.
      const live = process.stdout.isTTY === true
      const logFile = join(config.dataDir, 'placeguard.log')
      const logger = createLogger({ level: config.logLevel, ...(live ? { file: logFile } : {}) })
      const paths = pkiPaths(config.dataDir)
      if (!existsSync(paths.caCert)) {
        // In a child, like the CRL re-signing: the CA key is made and written
        // there, and never sits in this network-facing process (STRIDE I).
        await runPlaceguard(['--data-dir', config.dataDir, 'pki', 'init'])
        logger.info({ dir: paths.dir }, 'fleet PKI created')
      }
      const broker = brokerFor(config, logger)
      broker.on('security-event', (event) => {
        if (event.type === 'connect' || event.type === 'disconnect') logger.debug({ event }, `${event.type}: ${event.deviceId ?? 'unknown'}`)
      })
      const address = await broker.listen()
      const stopCrl = keepCrlFresh(config.dataDir, logger)
      const host = config.mqttHost === '0.0.0.0' ? '127.0.0.1' : config.mqttHost
      const collector = createCollectorService(config, `mqtts://${host}:${address.port}`, logger)
      await collector.start()
      const tokens = config.apiTokens.length > 0 ? config.apiTokens : [{ token: demoToken(config), role: 'operator' as const }]
      const api = await startApiServer(apiSourceFrom(collector, tokens), { host: config.httpHost, port: config.httpPort, logger })
      logger.info({ url: api.url }, 'HTTP API and dashboard listening')
      const demoTokenShown = config.apiTokens.length === 0 ? tokens[0]!.token : undefined
      const view = live
        ? startLiveView(process.stdout, {
          onAlertChange: collector.onAlertChange,
          fleet: () => collector.fleet.summary(),
          received: () => collector.metrics().received,
        }, { url: api.url, token: demoTokenShown, logFile })
        : undefined
      if (!live && config.apiTokens.length === 0) {
        // For a person reading the output: the one line they need, outside the JSON log.
        process.stdout.write(`\nPlaceGuard dashboard: ${api.url}\n  demo operator token: ${tokens[0]!.token}\n  (set PLACEGUARD_API_TOKENS to choose your own; API docs at ${api.url}docs)\n\n`)
      }
      const demo = new AbortController()
      let simulation: Promise<unknown> = Promise.resolve()
      if (options.demoDevices > 0) {
        const scenario = options.demoScenario ? loadScenario(options.demoScenario) : undefined
        logger.info({ devices: options.demoDevices, scenario: scenario?.name }, 'starting the simulated demo fleet')
        simulation = runSimulation({
          dataDir: config.dataDir, brokerUrl: `mqtts://${host}:${address.port}`, devices: options.demoDevices,
          intervalMs: parseDuration('--demo-interval', options.demoInterval), durationMs: 0, scenario, seed: 1, signal: demo.signal,
          onPhase: (phase, total) => {
            if (phase !== 'run') return logger.info({ total }, `demo fleet: ${phase}`)
            logger.info('demo fleet connected and publishing')
            collector.detection.checkCertificates() // the demo fleet's identities were just issued
            collector.refreshInventory()
          },
        }).then((summary) => logger.info({ summary }, 'demo fleet stopped'), (error: Error) => logger.error({ err: error.message }, 'demo fleet failed'))
      }
      stopOnSignals(logger, async () => {
        view?.stop()
        demo.abort()
        await simulation
        stopCrl()
        await api.close()
        await collector.stop()
        await broker.close()
      })
    })
}

/** The demo token of this data directory: made once, kept 0600, printed at each start. */
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
