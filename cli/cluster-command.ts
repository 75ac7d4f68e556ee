import type { Command } from 'commander'
import { loadConfig } from '../app/config.ts'
import { invalidInput } from '../shared/errors.ts'
import { printJson, printTable } from './output.ts'
import { dataDirOf } from './options.ts'

/** `placeguard cluster status`: the nodes (alive or not), their sessions, the partitions and their lag. */
export function registerClusterCommands (program: Command): void {
  const cluster = program.command('cluster').description('the broker cluster in Redis (PLACEGUARD_REDIS_URL)')
  cluster.command('status')
    .description('nodes with their heartbeat and sessions, partitions with their length, lag and pending entries')
    .option('--redis-url <url>', 'the cluster\'s Redis (env PLACEGUARD_REDIS_URL)')
    .option('--json', 'print JSON')
    .action(async (options: { redisUrl?: string, json?: boolean }, command: Command) => {
      const config = loadConfig({ flags: { dataDir: dataDirOf(command), redisUrl: options.redisUrl } })
      if (!config.redisUrl) throw invalidInput('--redis-url', 'no cluster is configured', 'give --redis-url or set PLACEGUARD_REDIS_URL')
      const { readClusterStatus } = await import('../app/index.ts')
      const status = await readClusterStatus(config, config.redisUrl)
      if (options.json) return printJson(status)
      printTable(['node', 'state', 'sessions', 'last heartbeat', 'mqtt'], status.nodes.map((node) => [
        node.nodeId, node.alive ? 'alive' : 'DEAD', Object.entries(node.connections).map(([role, n]) => `${n} ${role}`).join(', ') || '0', node.beatAt, node.mqtt,
      ]))
      if (status.collectors.length > 0) {
        process.stdout.write('\n')
        printTable(['collector', 'state', 'partitions', 'last heartbeat', 'pid'], status.collectors.map((c) => [
          c.member, c.alive ? 'alive' : 'DEAD', c.partitions.join(',') || '-', c.beatAt, String(c.pid),
        ]))
      }
      process.stdout.write('\n')
      printTable(['partition', 'held by', 'token', 'length', 'lag', 'pending', 'consumers'], status.partitions.map((p) => [
        String(p.partition), p.holder ?? '-', p.token === null ? '-' : String(p.token), String(p.length), p.lag === null ? '?' : String(p.lag), String(p.pending), String(p.consumers),
      ]))
      const total = Object.values(status.connections).reduce((sum, n) => sum + n, 0)
      process.stdout.write(`\n${status.nodes.filter((n) => n.alive).length} of ${status.nodes.length} nodes alive; ${status.collectors.filter((c) => c.alive).length} of ${status.collectors.length} collectors alive; ${total} sessions; ${status.quarantined} devices quarantined\n`)
    })
}
