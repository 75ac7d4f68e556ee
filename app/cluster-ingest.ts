/**
 * The collector's input in a cluster: the partitions of the Redis Streams
 * the broker nodes append to, read in the `collectors` consumer group,
 * decoded and stored by the stream spool, acknowledged once stored; and
 * quarantine commands sent through Redis to every node. It offers the same
 * face as the MQTT collector (collector/collector.ts), so the service
 * around it does not care which it has.
 *
 * Several collectors share the partitions: each reads the ones it holds the
 * lease of (cluster/partition-leases.ts), one alone holds them all, and a
 * collector that dies hands its partitions (and its unacknowledged batch)
 * to the others within 15 s.
 */
import { EventEmitter } from 'node:events'
import { clusterKeys, connectRedis, ControlChannel, PartitionLeases, StreamReader } from '../cluster/index.ts'
import { type CollectorMetrics, type PointSink, StoreWriter, StreamSpool } from '../collector/index.ts'
import type { QuarantineCommand } from '../shared/control.ts'
import type { Logger } from '../shared/logger.ts'
import type { SecurityEvent } from '../shared/security-events.ts'
import type { StoredPoint } from '../shared/stored-point.ts'

export interface ClusterIngestOptions {
  redisUrl: string
  partitions: number
  /** This collector's name in the group (lease owner and stream consumer): unique per collector, stable across its restarts. */
  consumer: string
  sink: Pick<PointSink, 'write'>
  batchSize: number
  logger: Logger
}

/** Acknowledged entries are trimmed from the streams this often. */
const TRIM_EVERY_MS = 30_000

export class ClusterIngest extends EventEmitter<{ 'security-event': [SecurityEvent], 'telemetry': [StoredPoint], 'spool-full': [], 'connection': [connected: boolean] }> {
  readonly #options: ClusterIngestOptions
  readonly #spool: StreamSpool
  readonly #writer: StoreWriter
  readonly #reader: StreamReader
  readonly #leases: PartitionLeases
  readonly #control: ControlChannel
  readonly #redis: ReturnType<typeof connectRedis>
  readonly #blocking: ReturnType<typeof connectRedis>
  #connected = false
  #trim: NodeJS.Timeout | undefined

  constructor (options: ClusterIngestOptions) {
    super()
    this.#options = options
    const { logger, redisUrl, partitions, consumer } = options
    const keys = clusterKeys()
    this.#redis = connectRedis({ url: redisUrl, name: `placeguard-${consumer}`, logger })
    this.#blocking = connectRedis({ url: redisUrl, name: `placeguard-${consumer}-reader`, logger, blocking: true })
    this.#spool = new StreamSpool({
      logger, onPoints: () => this.#writer.kick(),
      // Points the store refuses for good wait in a dead-letter stream, shared by the collectors, with the store's reason.
      setAside: async (rejected) => {
        const pipeline = this.#redis.pipeline()
        for (const { point, reason } of rejected) pipeline.xadd(keys.rejected, '*', 'point', JSON.stringify(point), 'reason', reason, 'at', new Date().toISOString())
        for (const [error] of await pipeline.exec() ?? []) if (error) throw error
        logger.error({ rejected: rejected.length, stream: keys.rejected, reason: rejected[0]?.reason }, 'the store refused points for good; they are kept in the cluster\'s dead-letter stream')
      },
    })
    this.#writer = new StoreWriter({
      spool: this.#spool, sink: options.sink, batchSize: options.batchSize,
      onError: (message) => logger.error(`store write failed; the entries stay pending in the cluster stream: ${message}`),
    })
    // Renewals on the connection that never blocks: an XREADGROUP BLOCK must not delay them.
    this.#leases = new PartitionLeases({ redis: this.#redis, keys, partitions, member: consumer, logger })
    this.#reader = new StreamReader({
      redis: this.#blocking, keys, partitions, consumer, logger, leases: this.#leases,
      // Where the fence stands: the reader hands a batch over only once Redis
      // confirmed each partition's lease token, and acknowledges it only by
      // the fenced XACK (atomic with the check). The store writes in between
      // are not fenced: a collector paused while its store writer writes may
      // write once more after losing the lease. Its points are keyed by
      // (device, time) and events by entry, so the new holder, which handles
      // the same entries again, rewrites the same points; the PostgreSQL
      // writer of the next step takes entry.token into the database itself.
      handle: (entries) => this.#spool.take(entries.map((entry) => ({ key: `${entry.partition}/${entry.id}`, topic: entry.topic, payload: entry.payload }))),
    })
    this.#control = new ControlChannel({ redis: this.#redis, subscriber: this.#redis, keys, nodeId: consumer, logger, apply: () => {} })
    this.#spool.on('telemetry', (point) => this.emit('telemetry', point))
    this.#spool.on('security-event', (event) => this.emit('security-event', event))
    this.#blocking.on('ready', () => this.#setConnected(true))
    this.#blocking.on('close', () => this.#setConnected(false))
  }

  get connected (): boolean {
    return this.#connected
  }

  get metrics (): CollectorMetrics {
    return { ...this.#spool.metrics, spoolFullStalls: 0, spoolWriteErrors: 0 }
  }

  /** Points read from the streams and not yet stored. */
  get pendingPoints (): number {
    return this.#spool.pendingPoints
  }

  async start (): Promise<void> {
    this.#writer.start()
    await this.#leases.start()
    await this.#reader.start()
    this.#setConnected(true)
    this.#options.logger.info({ partitions: this.#options.partitions, held: this.#leases.held().size, members: this.#leases.members, consumer: this.#options.consumer },
      'collector reading the cluster streams')
    this.#trim = setInterval(() => {
      this.#reader.trimAcknowledged().catch((error: Error) => this.#options.logger.warn({ err: error.message }, 'cluster streams not trimmed; retried later'))
    }, TRIM_EVERY_MS)
    this.#trim.unref()
  }

  /** Quarantine and lift go to every broker node through Redis; resolves once Redis holds the command. */
  async sendCommand (command: QuarantineCommand): Promise<void> {
    await this.#control.publish(command)
  }

  async stop (): Promise<void> {
    clearInterval(this.#trim)
    // The batch in hand is given up (it stays pending and is read again at the next start), so the reader can stop.
    const stopping = this.#reader.stop()
    this.#spool.abandon('collector stopping')
    await stopping
    // Leaving the group: the others take the partitions at their next round and claim what was in hand.
    await this.#leases.stop()
    await this.#writer.stop()
    this.#redis.disconnect()
  }

  #setConnected (connected: boolean): void {
    if (connected === this.#connected) return
    this.#connected = connected
    this.emit('connection', connected)
  }
}
