import type { Command } from 'commander'
import type { CliNote } from '../app/index.ts'
import { loadConfig } from '../app/config.ts'
import { invalidInput, PlaceGuardError } from '../shared/errors.ts'
import { recorded } from './audit-trail-command.ts'
import { dataDirOf } from './options.ts'
import { printJson, printTable } from './output.ts'

interface TargetOptions { vendor?: string, model?: string, firmware?: string }

async function targetOf (options: TargetOptions): Promise<{ vendor: string, model: string, firmware: string }> {
  const { deviceProductOf } = await import('../pki/index.ts')
  const product = deviceProductOf(options)
  if (!product) throw invalidInput('vendor', 'give the vendor and model of the devices that run this firmware', 'e.g. --vendor "Acme Metering" --model EM-400 --firmware 5.3.1')
  if (options.firmware === undefined || options.firmware.trim() === '') throw invalidInput('firmware', 'give the firmware version as the devices report it (their `fw`)', 'e.g. --firmware 5.3.1')
  if (options.firmware.trim().length > 100) throw invalidInput('firmware', 'must be at most 100 characters')
  return { ...product, firmware: options.firmware.trim() }
}

/**
 * `placeguard advisories sbom add|list|remove`: the SBOM of each firmware
 * of a product, whose components are matched against OSV advisories
 * (docs/advisories.md#sboms). In the store the collectors read, as
 * `advisories sync` (the group's PostgreSQL with a database URL). A
 * refused SBOM exits 2 naming the field.
 */
export function registerSbomCommands (advisories: Command): void {
  const sbom = advisories.command('sbom').description('the SBOM (CycloneDX or SPDX JSON) of a firmware: its components are matched against OSV advisories')

  sbom.command('add <file|url>')
    .description('record the SBOM of one firmware of a product (replaces the one recorded for it)')
    .option('--vendor <name>', 'the vendor, as devices are issued with (pki issue --vendor)')
    .option('--model <name>', 'the model, as devices are issued with (pki issue --model)')
    .option('--firmware <version>', 'the firmware version as the devices report it')
    .option('--json', 'print JSON')
    // An SBOM decides which advisories a firmware is matched against: recorded in the audit trail like a sync.
    .action(recorded('advisories.sbom.add', (given: string, options: TargetOptions) => ({ subject: sbomSubject(options), detail: { source: given } }),
      async (given: string, options: TargetOptions & { json?: boolean }, command: Command, note: CliNote) => {
      const target = await targetOf(options)
      const [{ AdvisoryInputError, recordSbom, SourceError }, { openAdvisories }] = await Promise.all([import('../advisories/index.ts'), import('../app/index.ts')])
      const { store, close } = await openAdvisories(loadConfig({ flags: { dataDir: dataDirOf(command) } }))
      try {
        const sbom = await recordSbom(store, target, given, new Date().toISOString())
        note({ result: sbom.result, format: sbom.format, components: sbom.components, sha256: sbom.sha256 })
        if (options.json) return printJson(sbom)
        process.stdout.write(`${sbom.vendor} ${sbom.model} ${sbom.firmware}: ${sbom.result === 'unchanged' ? 'unchanged' : sbom.result === 'new' ? 'recorded' : 'replaced'}, ${sbom.format === 'cyclonedx' ? 'CycloneDX' : 'SPDX'} ${sbom.specVersion.replace(/^SPDX-/, '')}, ${sbom.components} components\n`)
      } catch (error) {
        if (error instanceof AdvisoryInputError) throw new PlaceGuardError('PG_ERR_INPUT_INVALID', error.message, { hint: 'give a CycloneDX 1.4–1.6 or SPDX 2.2/2.3 JSON document whose components all carry a version' })
        if (error instanceof SourceError) throw new PlaceGuardError('PG_ERR_INPUT_INVALID', `cannot read the SBOM: ${error.message}`)
        throw error
      } finally {
        await close()
      }
    }))

  sbom.command('list')
    .description('the SBOMs recorded: vendor, model, firmware, format, components, source')
    .option('--json', 'print JSON (with every component)')
    .action(async (options: { json?: boolean }, command: Command) => {
      const { openAdvisories } = await import('../app/index.ts')
      const { store, close } = await openAdvisories(loadConfig({ flags: { dataDir: dataDirOf(command) } }))
      try {
        const list = await store.sboms()
        if (options.json) return printJson(list)
        printTable(['VENDOR', 'MODEL', 'FIRMWARE', 'FORMAT', 'COMPONENTS', 'SOURCE'], list.map((s) => [s.vendor, s.model, s.firmware, `${s.format} ${s.specVersion.replace(/^SPDX-/, '')}`, String(s.components.length), s.source]))
      } finally {
        await close()
      }
    })

  sbom.command('remove')
    .description('forget the SBOM of one firmware of a product')
    .option('--vendor <name>', 'the vendor')
    .option('--model <name>', 'the model')
    .option('--firmware <version>', 'the firmware version')
    .action(recorded('advisories.sbom.remove', (options: TargetOptions) => ({ subject: sbomSubject(options) }),
      async (options: TargetOptions, command: Command, _note: CliNote) => {
      const target = await targetOf(options)
      const { openAdvisories } = await import('../app/index.ts')
      const { store, close } = await openAdvisories(loadConfig({ flags: { dataDir: dataDirOf(command) } }))
      try {
        if (!(await store.removeSbom(target))) throw invalidInput('firmware', `no SBOM is recorded for ${target.vendor} ${target.model} ${target.firmware}`, 'placeguard advisories sbom list shows what is')
        process.stdout.write(`${target.vendor} ${target.model} ${target.firmware}: SBOM removed\n`)
      } finally {
        await close()
      }
    }))
}

/** What the trail names: the firmware the SBOM belongs to, as given. */
function sbomSubject (options: TargetOptions): string {
  return [options.vendor, options.model, options.firmware].map((part) => part ?? '?').join(' / ')
}
