import type { Command } from 'commander'
import { loadConfig, verifyAuditTrail } from '../app/index.ts'
import { dataDirOf } from './options.ts'
import { printJson } from './output.ts'

/**
 * `placeguard audit-trail verify`: walks the operator audit trail's hash
 * chain (docs/audit-trail.md). Exit 0 when it is whole, 1 when it breaks —
 * a finding, printed with where and why, not an error of the command.
 */
export function registerAuditTrailCommands (program: Command): void {
  const trail = program.command('audit-trail').description('the operator audit trail (<data-dir>/audit.db, or the group\'s PostgreSQL)')
  trail.command('verify')
    .description('check the hash chain: whole, or the first entry where it breaks and why (edited, deleted, inserted, head-moved)')
    .option('--database-url <url>', 'the collector group\'s PostgreSQL (env PLACEGUARD_DATABASE_URL); without it, <data-dir>/audit.db')
    .option('--json', 'print JSON')
    .action(async (options: { databaseUrl?: string, json?: boolean }, command: Command) => {
      const config = loadConfig({ flags: { dataDir: dataDirOf(command), databaseUrl: options.databaseUrl } })
      const { trail: where, verdict } = await verifyAuditTrail(config)
      if (!verdict.intact) process.exitCode = 1
      if (options.json) return printJson({ trail: where, ...verdict })
      process.stdout.write(verdict.intact
        ? `intact: ${verdict.entries} entries in ${where}\n`
        : `BROKEN at seq ${verdict.brokenAt} (${verdict.reason}): ${verdict.message}; ${verdict.entries} entries in ${where}\n`)
    })
}
