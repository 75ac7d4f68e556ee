import { mkdirSync } from 'node:fs'
import { Presets, SingleBar } from 'cli-progress'
import type { Command } from 'commander'
import { openAdvisoryStore, syncCsafProvider, syncOsvDirectory, type SyncReport } from '../advisories/index.ts'
import { invalidInput } from '../shared/errors.ts'
import { dataDirOf } from './options.ts'
import { printJson, printTable } from './output.ts'
import { recorded } from './audit-trail-command.ts'
import type { CliNote } from '../app/index.ts'

const collect = (value: string, previous: string[] = []): string[] => [...previous, value]

/** A bar on stderr for a long sync on a terminal; nothing in a log or with --json. */
function progress (label: string, shown: boolean): { onProgress: (done: number, total: number) => void, stop: () => void } {
  let bar: SingleBar | undefined
  return {
    onProgress: (done, total) => {
      if (!shown || total < 20) return
      if (!bar) {
        bar = new SingleBar({ format: `${label} [{bar}] {value}/{total} files`, stream: process.stderr, hideCursor: true, clearOnComplete: true }, Presets.shades_classic)
        bar.start(total, done)
      } else bar.update(done)
    },
    stop: () => bar?.stop(),
  }
}

function summary (report: SyncReport): string {
  const lines = [`${report.source}: ${report.new} new, ${report.updated} updated, ${report.unchanged} unchanged, ${report.refused.length} refused (${report.reads} reads)`]
  for (const refusal of report.refused) lines.push(`  refused ${refusal.reason}`)
  for (const warning of report.warnings.slice(0, 20)) lines.push(`  warning ${warning}`)
  if (report.warnings.length > 20) lines.push(`  … and ${report.warnings.length - 20} more warnings (--json lists them all)`)
  return lines.join('\n') + '\n'
}

/**
 * `placeguard advisories sync|list`: CSAF and OSV advisories into
 * `<data-dir>/advisories.db` (docs/advisories.md). A sync that refused a
 * file exits 1 (a finding for cron to notice); the rest is synced all the same.
 */
export function registerAdvisoriesCommands (program: Command): void {
  const advisories = program.command('advisories').description('security advisories (CSAF 2.0, OSV) matched against devices\' vendor, model and firmware')

  advisories.command('sync')
    .description('fetch advisories: --csaf a provider-metadata.json URL or an offline mirror directory (repeatable), --osv a directory of OSV JSON files')
    .option('--csaf <url|dir>', 'a CSAF provider: its provider-metadata.json URL (or site URL), or a mirror directory laid out as it publishes', collect)
    .option('--osv <dir>', 'a directory of OSV JSON records (<vendor>/<model> package names)', collect)
    .option('--json', 'print JSON')
    // Recorded in the audit trail: the sources before, what each brought after (advisories decide which alerts open).
    .action(recorded('advisories.sync', (options: { csaf?: string[], osv?: string[] }) => ({ subject: null, detail: { csaf: options.csaf ?? [], osv: options.osv ?? [] } }),
      async (options: { csaf?: string[], osv?: string[], json?: boolean }, command: Command, note: CliNote) => {
      if (!options.csaf?.length && !options.osv?.length) throw invalidInput('csaf', 'give at least one --csaf <url|dir> or --osv <dir>', 'e.g. --csaf https://psirt.example.com/.well-known/csaf/provider-metadata.json')
      const dataDir = dataDirOf(command)
      mkdirSync(dataDir, { recursive: true })
      const store = openAdvisoryStore(dataDir)
      const reports: SyncReport[] = []
      try {
        for (const [kind, given] of [...(options.csaf ?? []).map((g) => ['csaf', g] as const), ...(options.osv ?? []).map((g) => ['osv', g] as const)]) {
          const bar = progress(given, !options.json && process.stderr.isTTY === true)
          try {
            reports.push(kind === 'csaf' ? await syncCsafProvider(given, { store, onProgress: bar.onProgress }) : await syncOsvDirectory(given, { store, onProgress: bar.onProgress }))
          } finally {
            bar.stop()
          }
          if (!options.json) process.stdout.write(summary(reports.at(-1)!))
        }
      } finally {
        store.close()
      }
      note({ synced: reports.map((r) => ({ source: r.source, new: r.new, updated: r.updated, unchanged: r.unchanged, refused: r.refused.length })) })
      if (options.json) printJson(reports)
      if (reports.some((r) => r.refused.length > 0)) process.exitCode = 1
    }))

  advisories.command('list')
    .description('the advisories synced: id, highest CVSS, CVEs, products named, title')
    .option('--json', 'print JSON')
    .action((options: { json?: boolean }, command: Command) => {
      const store = openAdvisoryStore(dataDirOf(command))
      try {
        const list = store.list()
        if (options.json) return printJson(list)
        printTable(['ID', 'CVSS', 'CVES', 'PRODUCTS', 'TITLE'], list.map((a) => [a.id, a.cvss?.toFixed(1) ?? '-', a.cves.join(',') || '-', String(a.products.length), a.title.slice(0, 60)]))
      } finally {
        store.close()
      }
    })
}
