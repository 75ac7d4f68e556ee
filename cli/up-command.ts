import type { Command } from 'commander'
import { loadScenario, runSimulation } from '../agent-sim/index.ts'
import { createCollectorService } from '../collector/service.ts'
import { FleetPki } from '../pki/index.ts'
import { parseDuration } from '../shared/duration.ts'
import { createLogger } from '../shared/logger.ts'
import { brokerFor, configFrom, stopOnSignals, withListenOptions } from './broker-command.ts'
import { wholeNumber } from './options.ts'

interface UpFlags { mqttPort?: number, mqttHost?: string, config?: string, demoDevices: number, demoScenario?: string, demoInterval: string }

/**
 * `placeguard up`: the single-machine deployment in one process. Creates
 * the fleet PKI on first run, starts the broker and the collector (into
 * InfluxDB, or the embedded store) and, with --demo-devices, a simulated
 * fleet against it; the dashboard joins as it is built (README, "Status").
 */
export function registerUpCommand (program: Command): void {
  withListenOptions(program.command('up')
    .description('run PlaceGuard on one machine: PKI on first run, broker, collector, optional simulated demo fleet'))
    .option('--demo-devices <n>', 'also simulate this many devices against the broker', wholeNumber('--demo-devices'), 0)
    .option('--demo-scenario <file>', 'incidents to inject into the demo fleet (agent-sim/scenarios/*.yaml)')
    .option('--demo-interval <duration>', 'telemetry interval of the demo fleet', '5s')
    .action(async (options: UpFlags, command: Command) => {
      const config = configFrom(options, command)
      const logger = createLogger({ level: config.logLevel, pretty: process.stdout.isTTY })
      const pki = new FleetPki(config.dataDir)
      if (!pki.initialized) {
        await pki.init()
        logger.info({ dir: pki.paths.dir }, 'fleet PKI created')
      }
      pki.close()
      const broker = brokerFor(config, logger)
      broker.on('security-event', (event) => {
        if (event.type === 'connect' || event.type === 'disconnect') logger.debug({ event }, `${event.type}: ${event.deviceId ?? 'unknown'}`)
      })
      const address = await broker.listen()
      const host = config.mqttHost === '0.0.0.0' ? '127.0.0.1' : config.mqttHost
      const collector = createCollectorService(config, `mqtts://${host}:${address.port}`, logger)
      await collector.start()
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
          },
        }).then((summary) => logger.info({ summary }, 'demo fleet stopped'), (error: Error) => logger.error({ err: error.message }, 'demo fleet failed'))
      }
      stopOnSignals(logger, async () => {
        demo.abort()
        await simulation
        await collector.stop()
        await broker.close()
      })
    })
}
