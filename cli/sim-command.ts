import type { Command } from 'commander'
import type { LorawanSimulationSummary, SimulationSummary } from '../agent-sim/index.ts'
import { parseDuration } from '../shared/duration.ts'
import { invalidInput } from '../shared/errors.ts'
import { assertId } from '../shared/ids.ts'
import { LORAWAN_NETWORKS, type LorawanNetwork } from '../shared/lorawan.ts'
import { dataDirOf, wholeNumber } from './options.ts'

interface SimFlags {
  devices: number
  broker: string[]
  interval: string
  duration: string
  mix?: string
  sites?: string
  scenario?: string
  truth?: string
  seed?: number
  json?: boolean
  network?: string
  integration?: string
  site?: string
  loopbackSources?: boolean
}

export function registerSimCommand (program: Command): void {
  program.command('sim')
    .description('simulate a fleet of devices, each with its own certificate, against a broker')
    .requiredOption('--devices <n>', 'number of devices', wholeNumber('--devices'))
    .requiredOption('--broker <url>', 'broker URL, e.g. mqtts://localhost:8883; repeat it or separate with commas for several broker nodes (device i starts on the i-th, modulo their number, and moves to the next after a failed attempt)', collectUrls)
    .option('--interval <duration>', 'telemetry interval per device (±20 % jitter)', '10s')
    .option('--duration <duration>', 'how long to run; 0 = until Ctrl-C', '60s')
    .option('--mix <weights>', 'kinds by weight', 'flood=40,energy=30,housing=30')
    .option('--sites <names>', 'comma-separated site names')
    .option('--scenario <file>', 'YAML scenario of incidents to inject')
    .option('--truth <file>', 'write one JSON line per injected incident (deviceId, policy, startedAt)')
    .option('--seed <n>', 'seed for a repeatable fleet, telemetry and incidents', wholeNumber('--seed'))
    .option('--json', 'print one JSON summary at the end')
    .option('--network <name>', 'emulate a LoRaWAN network server (chirpstack or tts) publishing the fleet through one integration certificate')
    .option('--integration <id>', 'with --network: the integration\'s id (default sim-<network>)')
    .option('--site <site>', 'with --network: the integration\'s site (default the first of --sites)')
    .option('--loopback-sources', 'each device connects from its own address, 127.2.0.1 onwards, so that a broker on this machine (--broker mqtts://127.0.0.1:…) sees a fleet, not one host its per-address limits hold back')
    .action(async (flags: SimFlags, command: Command) => {
      const { loadScenario, loopbackAddress, parseBrokerUrls, parseMix, runLorawanSimulation, runSimulation } = await import('../agent-sim/index.ts')
      const brokerUrls = parseBrokerUrls('--broker', flags.broker).map((broker) => broker.url)
      if (flags.loopbackSources) checkLoopbackSources(flags, brokerUrls)
      if (flags.devices < 1) throw invalidInput('--devices', 'must be at least 1')
      const sites = flags.sites?.split(',').map((site) => assertId('--sites', site.trim()))
      const lorawan = lorawanFlags(flags, brokerUrls)
      const controller = new AbortController()
      process.once('SIGINT', () => controller.abort())
      process.once('SIGTERM', () => controller.abort())
      const progress = await createProgress(!flags.json && process.stderr.isTTY === true)
      if (lorawan) {
        const summary = await runLorawanSimulation({
          dataDir: dataDirOf(command),
          brokerUrl: brokerUrls[0]!,
          ...lorawan,
          devices: flags.devices,
          intervalMs: parseDuration('--interval', flags.interval),
          durationMs: parseDuration('--duration', flags.duration),
          mix: flags.mix ? parseMix(flags.mix) : undefined,
          sites,
          scenario: flags.scenario ? loadScenario(flags.scenario) : undefined,
          truthFile: flags.truth,
          seed: flags.seed,
          signal: controller.signal,
          onPhase: progress.phase,
          onProgress: progress.update,
        })
        progress.stop()
        if (flags.json) process.stdout.write(JSON.stringify(summary) + '\n')
        else printLorawanSummary(summary)
        if (summary.failed > 0 && summary.injected === 0) process.exitCode = 1
        return
      }
      const summary = await runSimulation({
        dataDir: dataDirOf(command),
        brokerUrls,
        devices: flags.devices,
        intervalMs: parseDuration('--interval', flags.interval),
        durationMs: parseDuration('--duration', flags.duration),
        mix: flags.mix ? parseMix(flags.mix) : undefined,
        sites,
        scenario: flags.scenario ? loadScenario(flags.scenario) : undefined,
        truthFile: flags.truth,
        seed: flags.seed,
        ...flags.loopbackSources ? { localAddress: loopbackAddress } : {},
        signal: controller.signal,
        onPhase: progress.phase,
        onProgress: progress.update,
      })
      progress.stop()
      if (flags.json) process.stdout.write(JSON.stringify(summary) + '\n')
      else printSummary(summary)
      if (summary.connectErrors > 0 && !flags.loopbackSources && brokerUrls.every(isLoopbackUrl)) {
        process.stderr.write(`${summary.connectErrors} connection attempts failed. If the broker refused them (a PlaceGuard broker runs at most broker.maxHandshakesPerAddress handshakes from one address at once), --loopback-sources gives each simulated device its own address.\n`)
      }
      // A load test fails when messages are lost; with incidents injected, losses are part of the script.
      if (summary.failed > 0 && summary.injected === 0) process.exitCode = 1
    })
}

/** The LoRaWAN flags, checked; undefined without --network (and then --integration and --site are refused). */
function lorawanFlags (flags: SimFlags, brokerUrls: string[]): { network: LorawanNetwork, integrationId?: string, site?: string } | undefined {
  if (flags.network === undefined) {
    if (flags.integration !== undefined) throw invalidInput('--integration', 'only applies with --network chirpstack|tts')
    if (flags.site !== undefined) throw invalidInput('--site', 'only applies with --network chirpstack|tts', 'the devices\' sites are --sites')
    return undefined
  }
  if (!(LORAWAN_NETWORKS as readonly string[]).includes(flags.network)) {
    throw invalidInput('--network', `"${flags.network}" is not a network server PlaceGuard reads`, `one of ${LORAWAN_NETWORKS.join(', ')}`)
  }
  // A network server's integration is one MQTT connection: one broker (or one load balancer).
  if (brokerUrls.length !== 1) throw invalidInput('--broker', `--network publishes through one connection: give one broker URL, not ${brokerUrls.length}`)
  return {
    network: flags.network as LorawanNetwork,
    integrationId: flags.integration === undefined ? undefined : assertId('--integration', flags.integration),
    site: flags.site === undefined ? undefined : assertId('--site', flags.site),
  }
}

/**
 * --loopback-sources: the devices' addresses (127.2.x.y) reach only a
 * broker on this machine's 127.0.0.0/8, and a LoRaWAN network server is
 * one connection whatever its devices.
 */
function checkLoopbackSources (flags: SimFlags, brokerUrls: string[]): void {
  if (flags.network !== undefined) throw invalidInput('--loopback-sources', 'does not apply with --network: the network server publishes its whole fleet through one connection')
  const elsewhere = brokerUrls.find((url) => !isLoopbackUrl(url))
  if (elsewhere !== undefined) {
    throw invalidInput('--loopback-sources', `devices from 127.2.x.y reach only a broker on this machine's 127.0.0.0/8, not ${elsewhere}`, 'give --broker mqtts://127.0.0.1:<port>')
  }
}

/** An mqtts:// URL whose host is an IPv4 loopback address (not a name: localhost may resolve to ::1). */
function isLoopbackUrl (url: string): boolean {
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(new URL(url).hostname)
}

/** `--broker a,b --broker c` → [a, b, c]. */
function collectUrls (value: string, previous: string[] | undefined): string[] {
  return [...previous ?? [], ...value.split(',').map((url) => url.trim()).filter((url) => url !== '')]
}

/** A live bar on a TTY: connected devices, then messages acknowledged, msg/s and errors. */
async function createProgress (enabled: boolean) {
  if (!enabled) return { phase: () => {}, update: () => {}, stop: () => {} }
  const { MultiBar, Presets } = await import('cli-progress')
  const bars = new MultiBar({ stream: process.stderr, hideCursor: true, format: '{label} [{bar}] {value}/{total} {extra}' }, Presets.shades_classic)
  const connected = bars.create(1, 0, { label: 'connected', extra: '' })
  let lastAcked = 0
  let lastAt = Date.now()
  return {
    phase: (phase: string, total: number) => { if (phase === 'connect') connected.setTotal(total) },
    update: (s: { connected: number, devices: number, acked: number, sent: number, failed: number, connectErrors: number }) => {
      const now = Date.now()
      const rate = Math.round((s.acked - lastAcked) / Math.max(0.001, (now - lastAt) / 1000))
      lastAcked = s.acked
      lastAt = now
      connected.update(s.connected, { extra: `| ${s.acked}/${s.sent} acked | ${rate} msg/s | ${s.failed} failed | ${s.connectErrors} connect errors` })
    },
    stop: () => bars.stop(),
  }
}

function printLorawanSummary (s: LorawanSimulationSummary): void {
  process.stdout.write([
    `${s.network} integration ${s.integrationId}: ${s.devices} devices behind ${s.gateways} gateways, connected in ${s.connectMs} ms (provisioning ${s.provisionMs} ms: ${s.issued} issued, ${s.reused} reused, ${s.registered} registered)`,
    `uplinks ${s.uplinks}, joins ${s.joins}; sent ${s.sent}, acked ${s.acked}, failed ${s.failed}; PUBACK p50 ${s.publishAckP50Ms} ms, p99 ${s.publishAckP99Ms} ms; ${s.ackedPerSec} msg/s`,
    `reconnects ${s.reconnects}, incidents injected ${s.injected}`,
  ].join('\n') + '\n')
}

function printSummary (s: SimulationSummary): void {
  process.stdout.write([
    `devices ${s.devices}, connected ${s.connected} in ${s.connectMs} ms (provisioning ${s.provisionMs} ms: ${s.issued} issued, ${s.reused} reused)`,
    `sent ${s.sent}, acked ${s.acked}, failed ${s.failed}; PUBACK p50 ${s.publishAckP50Ms} ms, p99 ${s.publishAckP99Ms} ms; ${s.ackedPerSec} msg/s`,
    `reconnects ${s.reconnects}, connect errors ${s.connectErrors}, incidents injected ${s.injected}; RSS ${s.rssMiB} MiB (${s.memoryPerDeviceKiB} KiB per device)`,
    ...s.drops > 0 ? [`connections lost ${s.drops}, back within p50 ${s.timeToReconnectP50Ms} ms, p99 ${s.timeToReconnectP99Ms} ms, max ${s.timeToReconnectMaxMs} ms; ${s.dropsNotReconnected} not back at the end`] : [],
  ].join('\n') + '\n')
}
