import type { Command } from 'commander'
import { FleetPki } from '../pki/index.ts'
import { createLogger } from '../shared/logger.ts'
import { brokerFor, configFrom, stopOnSignals, withListenOptions } from './broker-command.ts'

/**
 * `placeguard up`: the single-machine deployment in one process. Creates
 * the fleet PKI on first run, then starts the broker; the collector, API
 * and simulated demo fleet join it as they are built (README, "Status").
 */
export function registerUpCommand (program: Command): void {
  withListenOptions(program.command('up')
    .description('run PlaceGuard on one machine: PKI on first run, broker (collector and dashboard join as they land)'))
    .action(async (options: { mqttPort?: number, mqttHost?: string, config?: string }, command: Command) => {
      const config = configFrom(options, command)
      const logger = createLogger({ level: config.logLevel })
      const pki = new FleetPki(config.dataDir)
      if (!pki.initialized) {
        await pki.init()
        logger.info({ dir: pki.paths.dir }, 'fleet PKI created')
      }
      pki.close()
      const broker = brokerFor(config, logger)
      broker.on('security-event', (event) => {
        if (event.type === 'connect' || event.type === 'disconnect') logger.info({ event }, `${event.type}: ${event.deviceId ?? 'unknown'}`)
      })
      await broker.listen()
      stopOnSignals(logger, () => broker.close())
    })
}
