/**
 * node bench/broker-state.ts — the broker's session store alone
 * (broker/sqlite-persistence.ts), without TLS or sockets: what one QoS 1
 * message to a persistent collector costs it (queued, given a packet id,
 * cleared on PUBACK), with synchronous FULL and NORMAL, one message at a
 * time (a commit each) and 100 at once (group commit). bench:broker gives
 * the end-to-end figure against the in-memory store.
 *
 *   node bench/broker-state.ts [--messages 5000]
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { SqlitePersistence } from '../broker/index.ts'
import { printTable, round, saveResults } from './lib/report.ts'

const { values } = parseArgs({ options: { messages: { type: 'string', default: '5000' } } })
const MESSAGES = Number(values.messages)
const collector = { id: 'collector' }
const rows: Array<Record<string, string | number>> = []
const dir = mkdtempSync(join(tmpdir(), 'placeguard-bench-state-'))
try {
  for (const synchronous of ['FULL', 'NORMAL'] as const) {
    for (const concurrent of [1, 100]) {
      const persistence = new SqlitePersistence({ path: join(dir, `${synchronous}-${concurrent}.db`), synchronous })
      await persistence.setup({ id: 'bench', counter: 0, publish: (_packet, done) => done() })
      const deliver = async (n: number): Promise<void> => {
        const packet = { cmd: 'publish', topic: 'places/block-1/housing/dev-1/telemetry', payload: Buffer.alloc(100), qos: 1, retain: false, dup: false, brokerId: 'bench', brokerCounter: n + 1 }
        const messageId = n % 65535 + 1
        await persistence.outgoingEnqueueCombi([{ clientId: collector.id }], packet)
        await persistence.outgoingUpdate(collector, { ...packet, messageId })
        await persistence.outgoingClearMessageId(collector, { messageId })
      }
      const started = performance.now()
      for (let n = 0; n < MESSAGES; n += concurrent) {
        await Promise.all(Array.from({ length: Math.min(concurrent, MESSAGES - n) }, (_, i) => deliver(n + i)))
      }
      const seconds = (performance.now() - started) / 1000
      rows.push({ synchronous, 'messages at once': concurrent, 'µs per message': round(seconds * 1e6 / MESSAGES, 0), 'msg/s': Math.round(MESSAGES / seconds) })
      await persistence.destroy()
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true })
}
printTable(rows)
process.stdout.write(`results: ${saveResults('broker-state', { at: new Date().toISOString(), messages: MESSAGES, rows })}\n`)
