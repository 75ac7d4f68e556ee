import { existsSync } from 'node:fs'
import { join } from 'node:path'
import type { Command } from 'commander'
import type { Outbox } from '../delivery/index.ts'
import { createLogger } from '../shared/logger.ts'
import { dataDirOf } from './options.ts'
import { printJson, printTable } from './output.ts'

/**
 * `placeguard outbox dead-letters | requeue`: the alert deliveries a sink
 * refused or could not take for too long. Safe while the collector runs
 * (SQLite WAL): re-queued deliveries are picked up within a second.
 */
export function registerOutboxCommands (program: Command): void {
  const outbox = program.command('outbox').description('alert deliveries to SOC sinks that did not get through')

  outbox.command('dead-letters')
    .description('deliveries moved to the dead-letter list, with their last error')
    .option('--sink <name>', 'only this sink')
    .option('--json', 'print JSON (whole alerts)')
    .action(async (options: { sink?: string, json?: boolean }, command: Command) => {
      const letters = await withOutbox(dataDirOf(command), (box) => box.deadLetters(options.sink))
      if (options.json) return printJson(letters)
      printTable(['sink', 'created', 'change', 'policy', 'deviceId', 'attempts', 'lastError'],
        letters.map((l) => [l.sink, l.createdAt, l.change, ...(l.change === 'audit' ? [`audit:${l.audit.action}`, l.audit.subject ?? '-'] : [l.alert.policy, l.alert.deviceId]), String(l.attempts), l.lastError ?? '']))
    })

  outbox.command('requeue')
    .description('put dead letters back in the queue, keeping their delivery ids')
    .option('--sink <name>', 'only this sink')
    .action(async (options: { sink?: string }, command: Command) => {
      const count = await withOutbox(dataDirOf(command), (box) => box.requeueDeadLetters(options.sink))
      process.stdout.write(`${count} deliveries re-queued\n`)
    })
}

async function withOutbox<T> (dataDir: string, work: (outbox: Outbox) => T): Promise<T> {
  const { Outbox } = await import('../delivery/index.ts')
  const path = join(dataDir, 'outbox.db')
  // No outbox yet (no sink ever configured): an empty one, without creating the file.
  const outbox = new Outbox({ path: existsSync(path) ? path : ':memory:', sinks: [], deadLetterAfterMs: 1, logger: createLogger({ level: 'silent' }) })
  try {
    return work(outbox)
  } finally {
    void outbox.stop()
  }
}
