/**
 * A cluster-mode collector service (the one `placeguard collector
 * --redis-url` runs, without the HTTP API) as a process of its own, for
 * the tests that kill it with SIGKILL. Prints {"started":true} once its
 * first lease round is done.
 *
 *   node cluster-collector-process.ts '{"url":…,"dataDir":…,"name":…,"partitions":8[,"snapshotEveryMs":…]}'
 */
import { writeSync } from 'node:fs'
import { createCollectorService } from '../../app/collector-service.ts'
import { loadConfig } from '../../app/config.ts'
import { createLogger } from '../../shared/logger.ts'

interface Settings { url: string, dataDir: string, name: string, partitions: number, snapshotEveryMs?: number }

const settings = JSON.parse(process.argv[2]!) as Settings
const config = loadConfig({ env: {}, flags: { dataDir: settings.dataDir, redisUrl: settings.url, cluster: { partitions: settings.partitions, collectorName: settings.name } } })
const service = createCollectorService(config, '', createLogger({ level: 'silent' }), { snapshotEveryMs: settings.snapshotEveryMs })
await service.start()
writeSync(1, `${JSON.stringify({ started: true })}\n`)
