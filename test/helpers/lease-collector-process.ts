/**
 * One collector of a group as a process of its own, for the tests that
 * kill it (SIGKILL) or freeze it (SIGSTOP): PartitionLeases and a
 * StreamReader on a real redis-server, with a stand-in store. One JSON line
 * per event on stdout:
 *   {"held":[p…]}        the partitions it reads, whenever that changes
 *   {"inHand":[key…]}    a batch handed to the store (key = partition/id)
 *   {"stored":[key…]}    the store wrote it: the fence let the write through
 *   {"refused":[key…]}   the fence refused the write: the lease changed hands
 *
 *   node lease-collector-process.ts '{"url":…,"prefix":…,"member":…,"partitions":16,"mode":"hang"}'
 * mode "hang": the store never answers (a batch stays in hand until the
 * process dies). mode "slow": the store takes storeMs, then checks each
 * entry's lease token in Redis right before writing.
 */
import { writeSync } from 'node:fs'
import { clusterKeys, connectRedis, PartitionLeases, StreamReader, type StreamEntry } from '../../cluster/index.ts'
import { createLogger } from '../../shared/logger.ts'

interface Settings { url: string, prefix: string, member: string, partitions: number, mode: 'hang' | 'slow', storeMs?: number, ttlMs?: number, renewMs?: number }

const settings = JSON.parse(process.argv[2]!) as Settings
const logger = createLogger({ level: 'silent' })
const keys = clusterKeys(settings.prefix)
const out = (line: object): void => { writeSync(1, `${JSON.stringify(line)}\n`) }
const keysOf = (entries: StreamEntry[]): string[] => entries.map((entry) => `${entry.partition}/${entry.id}`)

const leases = new PartitionLeases({
  redis: connectRedis({ url: settings.url, name: `${settings.member}-leases`, logger }), keys, partitions: settings.partitions, member: settings.member, logger,
  ...settings.ttlMs ? { ttlMs: settings.ttlMs } : {}, ...settings.renewMs ? { renewMs: settings.renewMs } : {},
})
const reader = new StreamReader({
  redis: connectRedis({ url: settings.url, name: `${settings.member}-reader`, logger, blocking: true }),
  keys, partitions: settings.partitions, consumer: settings.member, logger, leases,
  handle: async (entries) => {
    out({ inHand: keysOf(entries) })
    if (settings.mode === 'hang') return new Promise<void>(() => {})
    await new Promise((resolve) => setTimeout(resolve, settings.storeMs ?? 1_000))
    // The writer's own fence, right before the write.
    const valid = await leases.checkAll(new Map(entries.map((entry) => [entry.partition, entry.token!])))
    const refused = entries.filter((entry) => !valid.has(entry.partition))
    if (refused.length > 0) {
      out({ refused: keysOf(refused) })
      throw new Error('lease changed hands: write refused')
    }
    out({ stored: keysOf(entries) })
  },
})

let held = ''
setInterval(() => {
  const now = JSON.stringify([...leases.held().keys()].sort((a, b) => a - b))
  if (now !== held) out({ held: JSON.parse(now) as number[] })
  held = now
}, 50)
await leases.start()
await reader.start()
