/**
 * Appends numbered points to a spool as fast as it can and prints, after
 * each `append` returns, how many points it has appended so far — the
 * points a collector would now acknowledge. The test kills it with SIGKILL.
 *
 *   node spool-append-process.ts <spool.db> <pointsPerBatch>
 */
import { writeSync } from 'node:fs'
import { Spool } from '../../collector/spool.ts'

const [path, batchText] = process.argv.slice(2) as [string, string]
const perBatch = Number(batchText)
const spool = new Spool({ path, maxBytes: 1024 ** 3 })
let appended = 0
for (;;) {
  const points = Array.from({ length: perBatch }, (_, i) => ({
    measurement: 'flood', tags: { site: 'riverside', device: 'flood-001' },
    fields: { level_cm: 12.5, seq: appended + i }, timestampMs: 1_700_000_000_000 + appended + i,
  }))
  spool.append(points)
  appended += perBatch
  // Synchronous, so the parent has read nothing that append had not returned for.
  writeSync(1, `${appended}\n`)
}
