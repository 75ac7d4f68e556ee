/**
 * Appends `count` entries to an audit trail file as `actor`, as fast as it
 * can, then exits: a second process writing the same SQLite trail at the
 * same time as another. It opens the file, prints `ready`, and waits for a
 * line on stdin before it starts, so two of them can be let go together.
 *
 *   node audit-append-process.ts <audit.db> <actor> <count>
 */
import { once } from 'node:events'
import { writeSync } from 'node:fs'
import { SqliteAuditStore } from '../../audit/sqlite-audit-store.ts'

const [path, actor, countText] = process.argv.slice(2) as [string, string, string]
const store = new SqliteAuditStore({ path })
writeSync(1, 'ready\n')
await once(process.stdin, 'data')
for (let i = 0; i < Number(countText); i++) store.append({ actor, action: 'alert.comment', subject: `alr-${i}`, detail: { i } })
store.close()
process.exit(0)
