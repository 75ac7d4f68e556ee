/**
 * A delivery process to kill: opens the outbox at argv[2] with a webhook
 * sink to argv[3] (secret argv[4]), queues argv[5] alert changes (printing
 * their delivery ids as one JSON line), and delivers until killed.
 *   node test/helpers/outbox-process.ts <db> <url> <secret> <count>
 */
import { Outbox } from '../../delivery/index.ts'
import { createSink } from '../../delivery/sinks.ts'
import { AlertBook } from '../../detection/alert-book.ts'
import { createLogger } from '../../shared/logger.ts'

const [path, url, secret, count] = process.argv.slice(2) as [string, string, string, string]
const outbox = new Outbox({
  path, deadLetterAfterMs: 3_600_000, logger: createLogger({ level: 'silent' }), baseBackoffMs: 100, maxBackoffMs: 500,
  sinks: [{ sink: createSink({ type: 'webhook', url, secrets: [secret], minSeverity: 'info' }), route: { minSeverity: 'info' } }],
})
const book = new AlertBook()
for (let i = 0; i < Number(count); i++) {
  outbox.enqueue((await book.raise({ policy: 'identity-clone', deviceId: `housing-${i}`, severity: 'critical', summary: 'cloned', evidence: {} })))
}
process.stdout.write(`${JSON.stringify({ queued: outbox.metrics()[0]!.pending })}\n`)
outbox.start()
