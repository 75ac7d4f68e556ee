import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Command } from 'commander'
import { BROKER_DB_FILE, createSqlitePersistence, PlaceGuardBroker, QUARANTINE_FILE, SESSION_OWNERS_FILE } from '../broker/index.ts'
import { pkiPaths } from '../pki/index.ts'
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
    sessionOwnersFile: join(config.dataDir, SESSION_OWNERS_FILE),
  })
  broker.aedes.once('closed', () => { void persistence?.destroy() })
  return broker
}

const CRL_CHECK_MS = 6 * 3_600_000
/** A re-signing that has not finished by then is stuck (a locked inventory, a hung disk). */
const CRL_CHILD_TIMEOUT_MS = 120_000
const PLACEGUARD_BIN = fileURLToPath(new URL('../bin/placeguard.js', import.meta.url))

/**
 * Keeps the CRL from lapsing while the broker runs: every 6 hours (and at
 * start) it is re-signed if it lapses within 7 days. Once a CRL lapses,
 * OpenSSL refuses every client — the whole fleet would be locked out. The
 * broker notices the new file by itself.
 *
 * The re-signing runs in a short-lived child process (`placeguard pki crl
 * --if-due 7`): the broker faces the network, and a memory disclosure or
 * code execution there must not yield the CA key (STRIDE I/E). Where the
 * data directory holds no `ca.key` (a broker node with a copy of pki/
 * without the key), the CRL is re-signed where the key lives, from cron.
 */
export function keepCrlFresh (dataDir: string, logger: Logger): () => void {
  let toldNoKey = false
  let running = false
  // The child, not this process, looks for the key: the broker neither opens nor stats it.
  const check = (): void => {
    if (running) return
    running = true
    runPlaceguard(['--data-dir', dataDir, 'pki', 'crl', '--if-due', '7']).then(
      (stdout) => { if (stdout.startsWith('CRL refreshed')) logger.info({ result: stdout.trim() }, 'CRL re-signed before it lapses') },
      (error: Error) => {
        if (!error.message.includes('PG_ERR_PKI_NO_CA')) return logger.error({ err: error.message }, 'CRL not re-signed; run `placeguard pki crl` before it lapses')
        if (!toldNoKey) logger.info('no CA key in this data directory: re-sign the CRL where the key is kept (`placeguard pki crl` from cron)')
        toldNoKey = true
      },
    ).finally(() => { running = false })
  }
  check()
  const timer = setInterval(check, CRL_CHECK_MS)
  timer.unref()
  return () => clearInterval(timer)
}

/** Runs a `placeguard` command in a child process; rejects with its stderr if it fails. */
export function runPlaceguard (args: string[], timeoutMs = CRL_CHILD_TIMEOUT_MS): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [PLACEGUARD_BIN, ...args], { timeout: timeoutMs, encoding: 'utf8' }, (error, stdout, stderr) => {
      if (error) reject(new Error((stderr.trim() || error.message).slice(0, 1_000)))
      else resolve(stdout)
    })
  })
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
