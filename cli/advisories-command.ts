import type { Command } from 'commander'
import type { SignatureTrust, SyncReport } from '../advisories/index.ts'
import { loadConfig } from '../app/config.ts'
import { invalidInput } from '../shared/errors.ts'
import { registerSbomCommands } from './advisories-sbom-command.ts'
import { dataDirOf } from './options.ts'
import { printJson, printTable, progressBar } from './output.ts'
import { recorded } from './audit-trail-command.ts'
import type { CliNote } from '../app/index.ts'

const collect = (value: string, previous: string[] = []): string[] => [...previous, value]

/** One `--csaf`, with the `--openpgp-key`/`--openpgp-fingerprint` flags that follow it (before the next `--csaf`). */
interface CsafArgument { given: string, keyFiles: string[], pins: string[] }

function summary (report: SyncReport): string {
  const lines = [`${report.source}: ${report.new} new, ${report.updated} updated, ${report.unchanged} unchanged, ${report.refused.length} refused (${report.reads} reads)`]
  if (report.signatures?.checked === false) lines.push('  OpenPGP signatures not checked: no key configured for this provider (--openpgp-key, --openpgp-fingerprint)')
  else if (report.signatures?.keys.length) lines.push(`  OpenPGP signatures checked with ${report.signatures.keys.map((k) => `${k.fingerprint} (${k.from})`).join(', ')}`)
  for (const refusal of report.refused) lines.push(`  refused ${refusal.reason}`)
  for (const warning of report.warnings.slice(0, 20)) lines.push(`  warning ${warning}`)
  if (report.warnings.length > 20) lines.push(`  … and ${report.warnings.length - 20} more warnings (--json lists them all)`)
  return lines.join('\n') + '\n'
}

/**
 * `placeguard advisories sync|list`: CSAF and OSV advisories into
 * `<data-dir>/advisories.db`, or with PLACEGUARD_DATABASE_URL the collector
 * group's PostgreSQL (docs/advisories.md). A sync that refused a
 * file exits 1 (a finding for cron to notice); the rest is synced all the same.
 */
export function registerAdvisoriesCommands (program: Command): void {
  // Commander parses flags in order: a key flag belongs to the --csaf parsed last. The action checks that every one found a home.
  let csafSoFar: CsafArgument[] = []
  const advisories = program.command('advisories').description('security advisories (CSAF 2.0, OSV) matched against devices\' vendor, model and firmware')

  advisories.command('sync')
    .description('fetch advisories: --csaf a provider-metadata.json URL or an offline mirror directory (repeatable), --osv a directory of OSV JSON files')
    .option('--csaf <url|dir>', 'a CSAF provider: its provider-metadata.json URL (or site URL), or a mirror directory laid out as it publishes', (value: string, previous: CsafArgument[] = []) => {
      csafSoFar = [...previous, { given: value, keyFiles: [], pins: [] }]
      return csafSoFar
    })
    .option('--openpgp-key <file>', 'a public key (armored or binary) trusted for the --csaf before it: each advisory must carry a good .asc signature by it (repeatable)', (value: string, previous: string[] = []) => {
      csafSoFar.at(-1)?.keyFiles.push(value)
      return [...previous, value]
    })
    .option('--openpgp-fingerprint <hex>', 'trust the key the --csaf before it lists in provider-metadata.json (public_openpgp_keys) only if the key has this fingerprint (repeatable)', (value: string, previous: string[] = []) => {
      csafSoFar.at(-1)?.pins.push(value)
      return [...previous, value]
    })
    .option('--osv <dir>', 'a directory of OSV JSON records: <vendor>/<model> packages match devices, other packages match firmware components through recorded SBOMs', collect)
    .option('--json', 'print JSON')
    // The pins are checked once parsing is done, before the action is recorded: the check lives in advisories/, loaded only when a command runs.
    .hook('preAction', async (command) => {
      const { normalFingerprint } = await import('../advisories/index.ts')
      const normal = (value: string): string => {
        const pin = normalFingerprint(value)
        if (!pin) throw invalidInput('--openpgp-fingerprint', `"${value.slice(0, 80)}" is not an OpenPGP fingerprint`, '40 hex digits (64 for a v6 key), spaces allowed, as gpg --fingerprint prints it')
        return pin
      }
      const given = command.getOptionValue('openpgpFingerprint') as string[] | undefined
      if (given) command.setOptionValue('openpgpFingerprint', given.map(normal))
      for (const csaf of csafSoFar) csaf.pins = csaf.pins.map(normal)
    })
    // Recorded in the audit trail: the sources and the keys trusted for them before, what each brought after (advisories decide which alerts open).
    .action(recorded('advisories.sync', (options: { csaf?: CsafArgument[], osv?: string[] }) => ({
      subject: null, detail: { csaf: (options.csaf ?? []).map((c) => ({ source: c.given, openpgpKeys: c.keyFiles, openpgpFingerprints: c.pins })), osv: options.osv ?? [] },
    }), async (options: { csaf?: CsafArgument[], osv?: string[], openpgpKey?: string[], openpgpFingerprint?: string[], json?: boolean }, command: Command, note: CliNote) => {
      if (!options.csaf?.length && !options.osv?.length) throw invalidInput('csaf', 'give at least one --csaf <url|dir> or --osv <dir>', 'e.g. --csaf https://psirt.example.com/.well-known/csaf/provider-metadata.json')
      const placed = (options.csaf ?? []).reduce((n, c) => n + c.keyFiles.length + c.pins.length, 0)
      if (placed !== (options.openpgpKey?.length ?? 0) + (options.openpgpFingerprint?.length ?? 0)) {
        throw invalidInput('--openpgp-key', 'a key flag comes before any --csaf', 'give --openpgp-key/--openpgp-fingerprint after the --csaf they apply to')
      }
      const [{ loadKeyFile, OpenPgpKeyError, syncCsafProvider, syncOsvDirectory }, { openAdvisories }] = await Promise.all([import('../advisories/index.ts'), import('../app/index.ts')])
      // Keys first, so a wrong key file is bad input (exit 2) before anything is fetched.
      const trust = new Map<CsafArgument, SignatureTrust>()
      for (const csaf of options.csaf ?? []) {
        if (csaf.keyFiles.length === 0 && csaf.pins.length === 0) continue
        const keys = []
        for (const file of csaf.keyFiles) {
          try {
            keys.push(...await loadKeyFile(file))
          } catch (error) {
            if (error instanceof OpenPgpKeyError) throw invalidInput('--openpgp-key', error.message, 'an OpenPGP public key as gpg --export --armor writes it')
            throw error
          }
        }
        trust.set(csaf, { keys, pins: csaf.pins })
      }
      const { store, close } = await openAdvisories(loadConfig({ flags: { dataDir: dataDirOf(command) } }))
      const reports: SyncReport[] = []
      try {
        const sources = [...(options.csaf ?? []).map((csaf) => ({ given: csaf.given, csaf })), ...(options.osv ?? []).map((given) => ({ given, csaf: undefined }))]
        for (const { given, csaf } of sources) {
          const bar = await progressBar(given, 'files', !options.json && process.stderr.isTTY === true, 20)
          try {
            reports.push(csaf
              ? await syncCsafProvider(given, { store, onProgress: bar.onProgress, openpgp: trust.get(csaf) })
              : await syncOsvDirectory(given, { store, onProgress: bar.onProgress }))
          } finally {
            bar.stop()
          }
          if (!options.json) process.stdout.write(summary(reports.at(-1)!))
        }
      } finally {
        await close()
      }
      note({ synced: reports.map((r) => ({ source: r.source, new: r.new, updated: r.updated, unchanged: r.unchanged, refused: r.refused.length })) })
      if (options.json) printJson(reports)
      if (reports.some((r) => r.refused.length > 0)) process.exitCode = 1
    }))

  advisories.command('list')
    .description('the advisories synced: id, highest CVSS, CVEs, products named, title')
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }, command: Command) => {
      const { openAdvisories } = await import('../app/index.ts')
      const { store, close } = await openAdvisories(loadConfig({ flags: { dataDir: dataDirOf(command) } }))
      try {
        const list = await store.list()
        if (options.json) return printJson(list)
        printTable(['ID', 'CVSS', 'CVES', 'PRODUCTS', 'TITLE'], list.map((a) => [a.id, a.cvss?.toFixed(1) ?? '-', a.cves.join(',') || '-', String(a.products.length), a.title.slice(0, 60)]))
      } finally {
        await close()
      }
    })

  registerSbomCommands(advisories)
}
