/**
 * Keeps appending to an audit trail file until told to stop: the collector's
 * side of a trail that an operator's CLI commands append to at the same
 * time. Prints `ready` once the file is open, starts on the first line on
 * stdin, stops at the second, prints how many it wrote and exits.
 *
 *   node audit-writer-process.ts <audit.db> <actor>
 */
import { writeSync } from 'node:fs'
import { SqliteAuditStore } from '../../audit/sqlite-audit-store.ts'

const [path, actor] = process.argv.slice(2) as [string, string]
const store = new SqliteAuditStore({ path })
let lines = 0
process.stdin.on('data', (chunk) => { lines += String(chunk).split('\n').length - 1 })
writeSync(1, 'ready\n')
while (lines === 0) await new Promise((resolve) => setTimeout(resolve, 5))
let written = 0
// An append every few milliseconds: busier than any operator, but with the gaps a collector's appends have. Flat
// out, back to back, one writer holds the file's write lock nearly always and another waits out its busy timeout.
while (lines < 2) {
  store.append({ actor, action: 'alert.comment', subject: `alr-${written}`, detail: { i: written++ } })
  await new Promise((resolve) => setTimeout(resolve, 2))
}
store.close()
writeSync(1, `${written}\n`)
process.exit(0)
