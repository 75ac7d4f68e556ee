/**
 * `placeguard devices`: the registry of devices that have no certificate of
 * their own, behind a LoRaWAN network server's integration (issue 16). The
 * registry lives in the PKI's inventory; this file only parses flags.
 */
import type { Command } from 'commander'
import type { FleetPki } from '../pki/index.ts'
import { printJson, printTable } from './output.ts'
import { dataDirOf } from './options.ts'
import { recorded } from './audit-trail-command.ts'
import type { CliNote } from '../app/index.ts'

async function withPki<T> (command: Command, work: (pki: FleetPki) => T): Promise<T> {
  const { FleetPki } = await import('../pki/index.ts')
  const pki = new FleetPki(dataDirOf(command))
  try {
    return work(pki)
  } finally {
    pki.close()
  }
}

export function registerDevicesCommands (program: Command): void {
  const devices = program.command('devices').description('devices behind a LoRaWAN network server: registered by DevEUI, vouched for by an integration certificate')

  devices.command('add <deviceId>')
    .description('register a LoRaWAN device (no certificate of its own) behind an integration')
    .requiredOption('--kind <kind>', 'flood | energy | housing')
    .requiredOption('--site <site>', 'site name ([a-z0-9-]{1,64})')
    .requiredOption('--dev-eui <hex>', 'its DevEUI: 16 hex digits')
    .requiredOption('--integration <id>', 'the integration (pki issue --role integration) its uplinks arrive through')
    .option('--vendor <name>', 'the device\'s vendor as its advisories name it (with --model): matched against CSAF advisories')
    .option('--model <name>', 'the device\'s model as its advisories name it (with --vendor)')
    .action(recorded('devices.add', (deviceId: string, options: object) => ({ subject: deviceId, detail: { ...options } }),
      async (deviceId: string, options: { kind: string, site: string, devEui: string, integration: string, vendor?: string, model?: string }, command: Command, note: CliNote) => {
      const { deviceProductOf } = await import('../pki/index.ts')
      await withPki(command, (fleet) => {
        // Checked before the registration, so a bad name leaves nothing half-done.
        const product = deviceProductOf({ vendor: options.vendor, model: options.model })
        const added = fleet.addLorawanDevice({ deviceId, kind: options.kind, site: options.site, devEui: options.devEui, integrationId: options.integration })
        if (product) fleet.recordDeviceProduct(added.deviceId, product)
        note({ network: added.network ?? null })
        process.stdout.write(`registered ${added.deviceId} (${added.kind}, ${added.site}) DevEUI ${added.devEui} via ${added.integrationId} (${added.network})\n`)
      })
    }))

  devices.command('list')
    .description('the registered LoRaWAN devices')
    .option('--json', 'print JSON')
    .action((options: { json?: boolean }, command: Command) => withPki(command, (fleet) => {
      const registered = fleet.lorawanDevices()
      if (options.json) return printJson(registered)
      printTable(['ID', 'KIND', 'SITE', 'DEVEUI', 'INTEGRATION', 'NETWORK', 'ADDED'],
        registered.map((d) => [d.deviceId, d.kind, d.site, d.devEui, d.integrationId, d.network ?? '-', d.addedAt]))
    }))

  devices.command('remove <deviceId>')
    .description('remove a registered LoRaWAN device: its uplinks are then an unknown device\'s')
    .action(recorded('devices.remove', (deviceId: string, _options: object) => ({ subject: deviceId }),
      (deviceId: string, _options: object, command: Command, note: CliNote) => withPki(command, (fleet) => {
      const removed = fleet.removeLorawanDevice(deviceId)
      note({ devEui: removed.devEui, integration: removed.integrationId })
      process.stdout.write(`removed ${removed.deviceId} (DevEUI ${removed.devEui})\n`)
    })))
}
