import { join } from 'node:path'
import type { Command } from 'commander'
import { BROKER_DB_FILE, createSqlitePersistence, PlaceGuardBroker, QUARANTINE_FILE } from '../broker/index.ts'
import { FleetPki, pkiPaths } from '../pki/index.ts'
import { type Config, loadConfig } from '../shared/config.ts'
import { createLogger, type Logger } from '../shared/logger.ts'
import { wholeNumber } from './options.ts'

interface ListenFlags { mqttPort?: number, mqttHost?: string, httpPort?: number, httpHost?: string, config?: string }

/** The flags every command that runs the broker takes. */
export function withListenOptions (command: Command): Command {
  return command
    .option('--mqtt-port <port>', 'MQTT over TLS port (default 8883)', wholeNumber('--mqtt-port'))
    .option('--mqtt-host <host>', 'address to listen on (default 0.0.0.0)')
    .option('--config <file>', 'YAML configuration file (env PLACEGUARD_CONFIG)')
}

export function configFrom (options: ListenFlags, command: Command): Config {
  const { dataDir } = command.optsWithGlobals<{ dataDir?: string }>()
  return loadConfig({ file: options.config, flags: { dataDir, mqttPort: options.mqttPort, mqttHost: options.mqttHost, httpPort: options.httpPort, httpHost: options.httpHost } })
}

export function brokerFor (config: Config, logger: Logger): PlaceGuardBroker {
  const paths = pkiPaths(config.dataDir)
  const { maxQueuedPerClient, maxQueuedBytesPerClient, ...limits } = config.broker
  // Sessions, subscriptions, retained and queued QoS 1 messages outlive a broker restart or crash.
  const persistence = config.brokerState === 'memory' ? undefined : createSqlitePersistence({ path: join(config.dataDir, BROKER_DB_FILE), maxQueuedPerClient, maxQueuedBytesPerClient, logger })
  const broker = new PlaceGuardBroker({
    tls: { caCert: paths.caCert, serverCert: paths.serverCert, serverKey: paths.serverKey, crl: paths.crl },
    host: config.mqttHost, port: config.mqttPort, limits, logger,
    quarantineFile: join(config.dataDir, QUARANTINE_FILE), aedes: { persistence },
  })
  broker.aedes.once('closed', () => { void persistence?.destroy() })
  return broker
}

const CRL_CHECK_MS = 6 * 3_600_000

/**
 * Keeps the CRL from lapsing while the broker runs: every 6 hours (and at
 * start) it is re-signed if it lapses within 7 days. Once a CRL lapses,
 * OpenSSL refuses every client — the whole fleet would be locked out. The
 * broker notices the new file by itself. Needs the CA key in the data
 * directory; where it is kept elsewhere, run `placeguard pki crl` from cron
 * and this logs why it could not.
 */
export function keepCrlFresh (dataDir: string, logger: Logger): () => void {
  const check = async (): Promise<void> => {
    const pki = new FleetPki(dataDir)
    try {
      const { refreshed, nextUpdate } = await pki.refreshCrlIfDue(7)
      if (refreshed) logger.info({ nextUpdate: nextUpdate?.toISOString() }, 'CRL re-signed before it lapses')
    } catch (error) {
      logger.error({ err: (error as Error).message }, 'CRL not re-signed; run `placeguard pki crl` before it lapses')
    } finally {
      pki.close()
    }
  }
  void check()
  const timer = setInterval(() => { void check() }, CRL_CHECK_MS)
  timer.unref()
  return () => clearInterval(timer)
}

export function registerBrokerCommand (program: Command): void {
  withListenOptions(program.command('broker').description('run the MQTT broker with mutual TLS on the fleet PKI'))
    .action(async (options: ListenFlags, command: Command) => {
      const config = configFrom(options, command)
      const logger = createLogger({ level: config.logLevel, name: 'placeguard-broker', pretty: process.stdout.isTTY })
      const broker = brokerFor(config, logger)
      await broker.listen()
      const stopCrl = keepCrlFresh(config.dataDir, logger)
      stopOnSignals(logger, async () => {
        stopCrl()
        await broker.close()
      })
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
