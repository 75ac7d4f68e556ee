import type { Command } from 'commander'
import { PlaceGuardBroker } from '../broker/index.ts'
import { pkiPaths } from '../pki/index.ts'
import { loadConfig } from '../shared/config.ts'
import { createLogger } from '../shared/logger.ts'
import { wholeNumber } from './options.ts'

export function registerBrokerCommand (program: Command): void {
  program.command('broker')
    .description('run the MQTT broker with mutual TLS on the fleet PKI')
    .option('--mqtt-port <port>', 'MQTT over TLS port (default 8883)', wholeNumber('--mqtt-port'))
    .option('--mqtt-host <host>', 'address to listen on (default 0.0.0.0)')
    .option('--config <file>', 'YAML configuration file (env PLACEGUARD_CONFIG)')
    .action(async (options: { mqttPort?: number, mqttHost?: string, config?: string }, command: Command) => {
      const globals = command.optsWithGlobals<{ dataDir?: string }>()
      const config = loadConfig({ file: options.config, flags: { dataDir: globals.dataDir, mqttPort: options.mqttPort, mqttHost: options.mqttHost } })
      const logger = createLogger({ level: config.logLevel, name: 'placeguard-broker' })
      const paths = pkiPaths(config.dataDir)
      const broker = new PlaceGuardBroker({
        tls: { caCert: paths.caCert, serverCert: paths.serverCert, serverKey: paths.serverKey, crl: paths.crl },
        host: config.mqttHost, port: config.mqttPort, limits: config.broker, logger,
      })
      await broker.listen()
      stopOnSignals(logger, () => broker.close())
    })
}

/** SIGTERM/SIGINT: stop gracefully once; a second signal exits at once. */
export function stopOnSignals (logger: { info: (msg: string) => void }, stop: () => Promise<void>): void {
  let stopping = false
  const onSignal = (signal: string): void => {
    if (stopping) process.exit(130)
    stopping = true
    logger.info(`${signal}: shutting down`)
    stop().then(() => process.exit(0), () => process.exit(1))
  }
  process.on('SIGTERM', onSignal)
  process.on('SIGINT', onSignal)
}
