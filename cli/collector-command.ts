import type { Command } from 'commander'
import { loadConfig } from '../app/config.ts'
import { invalidInput } from '../shared/errors.ts'
import { createLogger } from '../shared/logger.ts'
import { stopOnSignals } from './broker-command.ts'
import { wholeNumber } from './options.ts'

export function registerCollectorCommand (program: Command): void {
  program.command('collector')
    .description('stream telemetry and security events from the broker into InfluxDB (or the embedded store), losing none')
    .option('--broker <url>', 'broker URL, e.g. mqtts://localhost:8883 (not needed in a cluster: the collector reads the Redis Streams)')
    .option('--redis-url <url>', 'the cluster\'s Redis (env PLACEGUARD_REDIS_URL): read the broker nodes\' streams instead of one MQTT session')
    .option('--config <file>', 'YAML configuration file (env PLACEGUARD_CONFIG)')
    .option('--http-port <port>', 'HTTP API and dashboard port (default 8080)', wholeNumber('--http-port'))
    .option('--http-host <host>', 'address the HTTP API listens on (default 0.0.0.0)')
    .action(async (options: { broker?: string, redisUrl?: string, config?: string, httpPort?: number, httpHost?: string }, command: Command) => {
      const { dataDir } = command.optsWithGlobals<{ dataDir?: string }>()
      const config = loadConfig({ file: options.config, flags: { dataDir, httpPort: options.httpPort, httpHost: options.httpHost, redisUrl: options.redisUrl } })
      if (!config.redisUrl && options.broker === undefined) throw invalidInput('--broker', 'the collector needs the broker\'s URL', 'e.g. --broker mqtts://localhost:8883, or --redis-url in a cluster')
      if (options.broker !== undefined && !/^mqtts:\/\//.test(options.broker)) throw invalidInput('--broker', `"${options.broker}" is not an mqtts:// URL`, 'the collector connects with its client certificate, e.g. mqtts://localhost:8883')
      const logger = createLogger({ level: config.logLevel, name: 'placeguard-collector', pretty: process.stdout.isTTY })
      const { startCollectorProcess } = await import('../app/index.ts')
      const collector = await startCollectorProcess(config, options.broker ?? '', logger)
      stopOnSignals(logger, collector.stop)
    })
}
