import { join } from 'node:path'
import type { Command } from 'commander'
import { parseDuration } from '../shared/duration.ts'
import { createLogger } from '../shared/logger.ts'
import { configFrom, stopOnSignals, withListenOptions } from './broker-command.ts'
import { startLiveView } from './live-view.ts'
import { wholeNumber } from './options.ts'

interface UpFlags { mqttPort?: number, mqttHost?: string, httpPort?: number, httpHost?: string, config?: string, demoDevices: number, demoScenario?: string, demoInterval: string }

/**
 * `placeguard up`: the flags, the output, the signals. What runs is
 * assembled by app/up-process.ts: PKI on first run, broker, collector,
 * API and dashboard, and the demo fleet.
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
      const intervalMs = parseDuration('--demo-interval', options.demoInterval)
      // A person at a terminal gets the live view (cli/live-view.ts) and the JSON log goes to a file;
      // anything else (a pipe, a service manager, CI) gets JSON lines on stdout as before.
      const live = process.stdout.isTTY === true
      const logFile = join(config.dataDir, 'placeguard.log')
      const logger = createLogger({ level: config.logLevel, ...(live ? { file: logFile } : {}) })
      const { startUp } = await import('../app/index.ts')
      const up = await startUp(config, logger, { devices: options.demoDevices, scenarioFile: options.demoScenario, intervalMs })
      const { api, collector } = up
      const view = live
        ? startLiveView(process.stdout, {
          onAlertChange: collector.onAlertChange,
          fleet: () => collector.fleet.summary(),
          received: () => collector.metrics().received,
        }, { url: api.url, token: up.demoToken, logFile })
        : undefined
      if (!live && up.demoToken !== undefined) {
        // For a person reading the output: the one line they need, outside the JSON log.
        process.stdout.write(`\nPlaceGuard dashboard: ${api.url}\n  demo operator token: ${up.demoToken}\n  (set PLACEGUARD_API_TOKENS to choose your own; API docs at ${api.url}docs)\n\n`)
      }
      stopOnSignals(logger, async () => {
        view?.stop()
        await up.stop()
      })
    })
}
