import { hostname, userInfo } from 'node:os'
import type { Command } from 'commander'
import type { CliAction, CliNote } from '../app/index.ts'
import { loadConfig } from '../app/config.ts'
import { dataDirOf, wholeNumber } from './options.ts'
import { printJson, printTable } from './output.ts'

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
      const { verifyAuditTrail } = await import('../app/audit-admin.ts')
      const { trail: where, verdict } = await verifyAuditTrail(config)
      if (!verdict.intact) process.exitCode = 1
      if (options.json) return printJson({ trail: where, ...verdict })
      process.stdout.write(verdict.intact
        ? `intact: ${verdict.entries} entries in ${where}\n`
        : `BROKEN at seq ${verdict.brokenAt} (${verdict.reason}): ${verdict.message}; ${verdict.entries} entries in ${where}\n`)
    })
  trail.command('list')
    .description('the latest entries: who did what to which device, alert or sink, from where, and how it went')
    .option('--database-url <url>', 'the collector group\'s PostgreSQL (env PLACEGUARD_DATABASE_URL); without it, <data-dir>/audit.db')
    .option('--subject <id>', 'only this device\'s, alert\'s or sink\'s entries')
    .option('--limit <n>', 'at most this many, newest (default 50)', wholeNumber('--limit'), 50)
    .option('--json', 'print JSON, oldest first')
    .action(async (options: { databaseUrl?: string, subject?: string, limit: number, json?: boolean }, command: Command) => {
      const config = loadConfig({ flags: { dataDir: dataDirOf(command), databaseUrl: options.databaseUrl } })
      const { readAuditTrail } = await import('../app/audit-admin.ts')
      const { page } = await readAuditTrail(config, options.subject === undefined ? {} : { subject: options.subject }, options.limit)
      // Read newest first (the last `limit`), shown as they happened.
      const items = page.items.reverse()
      if (options.json) return printJson(items)
      printTable(['SEQ', 'AT', 'ACTOR', 'ACTION', 'SUBJECT', 'FROM', 'OUTCOME'],
        items.map((e) => [String(e.seq), e.at, e.actor, e.action, e.subject ?? '-', e.from ?? '-', typeof e.detail.outcome === 'string' ? e.detail.outcome : '-']))
    })
}

/**
 * A command's action, recorded in the operator audit trail the collectors
 * write (PLACEGUARD_DATABASE_URL's, else `<data-dir>/audit.db`): who (the
 * local user), from which machine, what and with which flags before it
 * runs, how it went after (app/audit-admin.ts). `describe` names the
 * action's subject and flags from commander's arguments and options,
 * never a key or passphrase; `run` is the action as commander calls it,
 * with `note` after the command to add what it learnt (a serial).
 */
export function recorded<A extends unknown[]> (
  action: string, describe: (...args: NoInfer<A>) => Omit<CliAction, 'action'>, run: (...args: [...A, Command, CliNote]) => unknown,
): (...args: [...A, Command]) => Promise<void> {
  return async (...given) => {
    const command = given.at(-1) as Command
    const args = given.slice(0, -1) as A
    const config = loadConfig({ flags: { dataDir: dataDirOf(command) } })
    const { auditedCliAction } = await import('../app/audit-admin.ts')
    await auditedCliAction(config, { action, ...describe(...args) }, async (note) => { await run(...args, command, note) }, {
      operator: { user: userInfo().username, host: hostname() },
      warn: (message) => process.stderr.write(`${message}\n`),
    })
  }
}
