import type { Command } from 'commander'
import { PlaceGuardBroker } from '../broker/index.ts'
import { FleetPki } from '../pki/index.ts'
import { loadConfig } from '../shared/config.ts'
import { createLogger } from '../shared/logger.ts'
import { stopOnSignals } from './broker-command.ts'
import { wholeNumber } from './options.ts'

/**
 * `placeguard up`: the single-machine deployment in one process. Creates
 * the fleet PKI on first run, then starts the broker; the collector, API
 * and simulated demo fleet join it as they are built (README, "Status").
 */
export function registerUpCommand (program: Command): void {
  program.command('up')
    .description('run PlaceGuard on one machine: PKI on first run, broker (collector and dashboard join as they land)')
    .option('--mqtt-port <port>', 'MQTT over TLS port (default 8883)', wholeNumber('--mqtt-port'))
    .option('--mqtt-host <host>', 'address to listen on (default 0.0.0.0)')
    .option('--config <file>', 'YAML configuration file (env PLACEGUARD_CONFIG)')
    .action(async (options: { mqttPort?: number, mqttHost?: string, config?: string }, command: Command) => {
      const globals = command.optsWithGlobals<{ dataDir?: string }>()
      const config = loadConfig({ file: options.config, flags: { dataDir: globals.dataDir, mqttPort: options.mqttPort, mqttHost: options.mqttHost } })
      const logger = createLogger({ level: config.logLevel })
      const pki = new FleetPki(config.dataDir)
      if (!pki.initialized) {
        await pki.init()
        logger.info({ dir: pki.paths.dir }, 'fleet PKI created')
      }
      pki.close()
      const broker = new PlaceGuardBroker({
        tls: { caCert: pki.paths.caCert, serverCert: pki.paths.serverCert, serverKey: pki.paths.serverKey, crl: pki.paths.crl },
        host: config.mqttHost, port: config.mqttPort, limits: config.broker, logger,
      })
      broker.on('security-event', (event) => {
        if (event.type === 'connect' || event.type === 'disconnect') logger.info({ event }, `${event.type}: ${event.deviceId ?? 'unknown'}`)
      })
      await broker.listen()
      stopOnSignals(logger, () => broker.close())
    })
}
