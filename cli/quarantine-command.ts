import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { userInfo } from 'node:os'
import type { Command } from 'commander'
import type { MqttClient } from 'mqtt'
import type { QuarantineCommand } from '../broker/index.ts'
import { parseDuration } from '../shared/duration.ts'
import { invalidInput, PlaceGuardError } from '../shared/errors.ts'
import { assertId } from '../shared/ids.ts'
import { QUARANTINE_CONTROL_TOPIC } from '../shared/topics.ts'
import { dataDirOf } from './options.ts'
import { printJson, printTable } from './output.ts'
import { recorded } from './audit-trail-command.ts'
import type { CliNote } from '../app/index.ts'

/**
 * `placeguard quarantine list | add | lift`: an operator's hand on the
 * broker's quarantine. `add` and `lift` speak to the running broker as the
 * collector role (its certificate in the data directory), on the control
 * topic the broker acts on before it acknowledges.
 */
export function registerQuarantineCommands (program: Command): void {
  const quarantine = program.command('quarantine').description('devices the broker refuses for a while: list, add, lift')
  const brokerOption = ['--broker <url>', 'the running broker', 'mqtts://localhost:8883'] as const

  quarantine.command('list')
    .description('quarantines in force (read from <data-dir>/quarantine.json, which the broker keeps)')
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }, command: Command) => {
      const { QUARANTINE_FILE, QuarantineList } = await import('../broker/index.ts')
      const entries = new QuarantineList(join(dataDirOf(command), QUARANTINE_FILE)).inForce(Date.now())
      if (options.json) return printJson(entries)
      printTable(['deviceId', 'until', 'by', 'reason'], entries.map((e) => [e.deviceId, e.until, e.by, e.reason]))
    })

  quarantine.command('add <deviceId>')
    .description('refuse a device at the broker for a while (its live session is dropped)')
    .requiredOption('--for <duration>', 'how long, e.g. 30m, 4h (at most 30 days)')
    .requiredOption('--reason <text>', 'why, for the audit trail')
    .option(...brokerOption)
    // Protective: carried out even when the audit trail cannot record it (docs/audit-trail.md).
    .action(recorded('quarantine.add', (deviceId: string, options: { for: string, reason: string }) => ({ subject: deviceId, detail: { for: options.for, reason: options.reason }, protective: true }),
      async (deviceId: string, options: { for: string, reason: string, broker: string }, command: Command, note: CliNote) => {
      const durationMs = parseDuration('--for', options.for)
      const { MAX_QUARANTINE_MS } = await import('../broker/index.ts')
      if (durationMs > MAX_QUARANTINE_MS) throw invalidInput('--for', `${options.for} is longer than 30 days`, 'revoke the certificate instead: placeguard pki revoke <deviceId>')
      await sendCommand(dataDirOf(command), options.broker, { action: 'quarantine', deviceId: assertId('deviceId', deviceId), durationMs, reason: options.reason, by: operator() })
      note({ durationMs })
      process.stdout.write(`${deviceId} quarantined for ${options.for}\n`)
    }))

  quarantine.command('lift <deviceId>')
    .description('let a quarantined device connect again')
    .option('--reason <text>', 'why, for the audit trail')
    .option(...brokerOption)
    .action(recorded('quarantine.lift', (deviceId: string, options: { reason?: string }) => ({ subject: deviceId, detail: { reason: options.reason ?? null } }),
      async (deviceId: string, options: { reason?: string, broker: string }, command: Command, _note: CliNote) => {
      await sendCommand(dataDirOf(command), options.broker, { action: 'lift', deviceId: assertId('deviceId', deviceId), by: operator(), ...(options.reason ? { reason: options.reason } : {}) })
      process.stdout.write(`quarantine of ${deviceId} lifted\n`)
    }))
}

function operator (): string {
  return `operator ${userInfo().username}`
}

async function sendCommand (dataDir: string, brokerUrl: string, command: QuarantineCommand): Promise<void> {
  if (!/^mqtts:\/\//.test(brokerUrl)) throw invalidInput('--broker', `"${brokerUrl}" is not an mqtts:// URL`)
  const { pkiPaths } = await import('../pki/index.ts')
  const paths = pkiPaths(dataDir)
  let client: MqttClient | undefined
  try {
    const { default: mqtt } = await import('mqtt')
    client = await mqtt.connectAsync(brokerUrl, {
      ca: readFileSync(paths.caCert), cert: readFileSync(paths.collectorCert), key: readFileSync(paths.collectorKey),
      clientId: 'collector-operator', reconnectPeriod: 0, connectTimeout: 10_000,
    })
    await client.publishAsync(QUARANTINE_CONTROL_TOPIC, JSON.stringify(command), { qos: 1 })
  } catch (error) {
    throw new PlaceGuardError('PG_ERR_BROKER_UNREACHABLE', `cannot reach the broker at ${brokerUrl}: ${(error as Error).message}`, {
      field: '--broker', hint: 'is the broker running, and is --data-dir the one it was set up with?', cause: error,
    })
  } finally {
    await client?.endAsync()
  }
}
