import type { Command } from 'commander'
import { type Config, loadConfig } from '../app/config.ts'
import { createLogger } from '../shared/logger.ts'
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

export function registerBrokerCommand (program: Command): void {
  withListenOptions(program.command('broker').description('run the MQTT broker with mutual TLS on the fleet PKI (a cluster node with --redis-url)'))
    .option('--node-id <name>', 'this node\'s name in the cluster (env PLACEGUARD_NODE_ID)')
    .option('--redis-url <url>', 'the cluster\'s Redis, redis:// or rediss:// (env PLACEGUARD_REDIS_URL); absent: a single broker')
    .option('--http-port <port>', 'a cluster node\'s /healthz and /metrics port (default 8080)', wholeNumber('--http-port'))
    .option('--http-host <host>', 'address they listen on (default 0.0.0.0)')
    .action(async (options: ListenFlags & { nodeId?: string, redisUrl?: string }, command: Command) => {
      const { dataDir } = command.optsWithGlobals<{ dataDir?: string }>()
      const config = loadConfig({ file: options.config, flags: { dataDir, mqttPort: options.mqttPort, mqttHost: options.mqttHost, httpPort: options.httpPort, httpHost: options.httpHost, nodeId: options.nodeId, redisUrl: options.redisUrl } })
      const logger = createLogger({ level: config.logLevel, name: 'placeguard-broker', pretty: process.stdout.isTTY })
      // The broker's own door into app/: it loads broker/ and pki/, not the collector, API or stores (docs/development.md).
      const { startBrokerProcess } = await import('../app/broker-process.ts')
      const broker = await startBrokerProcess(config, logger)
      stopOnSignals(logger, broker.stop)
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
