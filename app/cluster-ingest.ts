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
 * to the others within 15 s. Detection's learned state of each partition's
 * devices goes with the partition (cluster/detection-snapshots.ts): saved
 * every 5 s and at hand-over, what each batch changed appended before the
 * batch is acknowledged, restored before the partition is read.
 */
import { EventEmitter } from 'node:events'
import { clusterKeys, connectRedis, ControlChannel, DetectionSnapshots, PartitionLeases, partitionOf, StreamReader, type StreamEntry } from '../cluster/index.ts'
import { type CollectorMetrics, type LorawanRegistry, type PointSink, StoreWriter, StreamSpool } from '../collector/index.ts'
import type { LorawanObservation } from '../shared/lorawan.ts'
import type { QuarantineCommand } from '../shared/control.ts'
import type { Fence } from '../shared/fencing.ts'
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
  /**
   * Detection's learned device state, which travels with each partition
   * (Detection's exportDeviceState, importDeviceState and forgetDevices):
   * saved in Redis while the partition is held and when it is handed over,
   * restored before a partition taken is read, forgotten once it is gone.
   * Without it, nothing travels.
   */
  deviceState?: DeviceStateDoors
  /** How often the held partitions' device state is saved (default 5 s). */
  snapshotEveryMs?: number
  /**
   * Resolves once what detection made of the entries handed out so far is
   * stored: their alerts, and those alerts' deliveries. A batch is
   * acknowledged only after it, and a device-state snapshot is saved only
   * after it (exported first), so a collector killed in between leaves
   * entries whose findings are not stored yet pending, for the partition's
   * next reader to handle again. Absent: nothing to wait for.
   */
  settled?: () => Promise<void>
  /**
   * Partitions just taken (partition → lease token), after their device
   * state is restored and before any entry of theirs is read: where the
   * tokens are shown to the shared database (shared/fencing.ts). A failure
   * fails the take, which is retried at the next round.
   */
  onTaken?: (taken: ReadonlyMap<number, number>) => Promise<void>
  /** Who each DevEUI belongs to, for the integrations' uplinks in the streams; default: nobody's. */
  lorawanRegistry?: LorawanRegistry
  /**
   * The key a device's messages are partitioned by: its own id for a
   * device with a certificate; for a LoRaWAN device, its integration's id,
   * since the broker appends an integration's uplinks under the
   * integration (one network server's events in one partition, in its
   * order). Detection state and fences follow the partition the messages
   * are read from. Default: the device id.
   */
  partitionKeyOf?: (deviceId: string) => string
}

/** Small functions into detection, not detection itself: the cluster side needs these and nothing else. */
export interface DeviceStateDoors {
  export: (filter: (deviceId: string) => boolean) => unknown
  /** From now on, remember which devices' state changes (for exportChanged). */
  trackChanges: () => void
  /** The state of the devices `filter` picks whose state changed since the last call (undefined: none did). */
  exportChanged: (filter: (deviceId: string) => boolean) => unknown
  /** Returns the devices taken in. */
  import: (snapshot: unknown) => number
  forget: (filter: (deviceId: string) => boolean) => number
}

/** Acknowledged entries are trimmed from the streams this often. */
const TRIM_EVERY_MS = 30_000
/**
 * The held partitions' whole device state is saved this often. In between,
 * each batch's changes are appended before its acknowledgement, so a
 * collector killed without warning hands on the state of every message it
 * acknowledged (a device first heard a second before the kill included);
 * the snapshot only keeps the list of changes short.
 */
const SNAPSHOT_EVERY_MS = 5_000

export class ClusterIngest extends EventEmitter<{ 'security-event': [SecurityEvent], 'telemetry': [StoredPoint], 'lorawan': [LorawanObservation], 'spool-full': [], 'connection': [connected: boolean] }> {
  readonly #options: ClusterIngestOptions
  readonly #spool: StreamSpool
  readonly #writer: StoreWriter
  readonly #reader: StreamReader
  readonly #leases: PartitionLeases
  readonly #control: ControlChannel
  readonly #redis: ReturnType<typeof connectRedis>
  readonly #blocking: ReturnType<typeof connectRedis>
  readonly #snapshots: DetectionSnapshots
  #connected = false
  #trim: NodeJS.Timeout | undefined
  #snapshotTimer: NodeJS.Timeout | undefined
  /** Saves run one at a time, in order: an earlier view never lands after a later one. */
  #saving: Promise<void> = Promise.resolve()
  #periodicSaveRunning = false

  constructor (options: ClusterIngestOptions) {
    super()
    this.#options = options
    const { logger, redisUrl, partitions, consumer } = options
    const keys = clusterKeys()
    this.#redis = connectRedis({ url: redisUrl, name: `placeguard-${consumer}`, logger })
    this.#blocking = connectRedis({ url: redisUrl, name: `placeguard-${consumer}-reader`, logger, blocking: true })
    this.#spool = new StreamSpool({
      logger, onPoints: () => this.#writer.kick(), lorawanRegistry: options.lorawanRegistry,
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
    this.#snapshots = new DetectionSnapshots({ redis: this.#redis, keys })
    // Renewals on the connection that never blocks: an XREADGROUP BLOCK must not delay them.
    this.#leases = new PartitionLeases({
      redis: this.#redis, keys, partitions, member: consumer, logger,
      // A partition's device state is in detection before its first entry (the previous holder's pending batch included) is read…
      onTaken: async (taken) => {
        await this.#restoreState(taken)
        await this.#options.onTaken?.(taken)
      },
      // …saved, under the lease, when it is handed over…
      onReleasing: (leases) => this.#saveState(leases),
      // …and forgotten here once it is gone: its devices speak to another collector now, and would look silent here.
      onGone: (gone) => this.#forgetState(gone),
    })
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
      handle: async (entries) => {
        await this.#spool.take(entries.map((entry) => ({ key: `${entry.partition}/${entry.id}`, topic: entry.topic, payload: entry.payload })))
        // Detection saw these entries as they were decoded; their alerts are stored before the XACK…
        await this.#options.settled?.()
        // …and so is what they taught detection about their devices.
        await this.#appendChanges(entries)
      },
    })

    this.#control = new ControlChannel({ redis: this.#redis, subscriber: this.#redis, keys, nodeId: consumer, logger, apply: () => {} })
    this.#spool.on('telemetry', (point) => this.emit('telemetry', point))
    this.#spool.on('security-event', (event) => this.emit('security-event', event))
    this.#spool.on('lorawan', (observation) => this.emit('lorawan', observation))
    this.#blocking.on('ready', () => this.#setConnected(true))
    this.#blocking.on('close', () => this.#setConnected(false))
  }

  get connected (): boolean {
    return this.#connected
  }

  get metrics (): CollectorMetrics {
    return { ...this.#spool.metrics, spoolFullStalls: 0, spoolWriteErrors: 0 }
  }

  /**
   * The lease a device's writes are made under: its partition and the token
   * this collector holds it by (or held, until it learns the lease is
   * gone), or undefined when it holds no lease on it (another collector's
   * device, or no device's: a storm, a sink): such writes go unfenced and
   * the database's one-live-alert key deduplicates them.
   */
  fenceOf (deviceId: string): Fence | undefined {
    const partition = this.#partitionOfDevice(deviceId)
    const token = this.#leases.fenceToken(partition)
    return token === undefined ? undefined : { partition, token }
  }

  /** Points read from the streams and not yet stored. */
  get pendingPoints (): number {
    return this.#spool.pendingPoints
  }

  async start (): Promise<void> {
    // Detection remembers which devices change from here on: each batch saves what it changed.
    this.#options.deviceState?.trackChanges()
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
    if (this.#options.deviceState) {
      this.#snapshotTimer = setInterval(() => {
        if (this.#periodicSaveRunning) return
        this.#periodicSaveRunning = true
        this.#saveState(this.#leases.held())
          .catch((error: Error) => this.#options.logger.warn({ err: error.message }, 'detection state not saved; retried at the next round'))
          .finally(() => { this.#periodicSaveRunning = false })
      }, this.#options.snapshotEveryMs ?? SNAPSHOT_EVERY_MS)
      this.#snapshotTimer.unref()
    }
  }

  /** Quarantine and lift go to every broker node through Redis; resolves once Redis holds the command. */
  async sendCommand (command: QuarantineCommand): Promise<void> {
    await this.#control.publish(command)
  }

  async stop (): Promise<void> {
    clearInterval(this.#trim)
    clearInterval(this.#snapshotTimer)
    // The batch in hand is given up (it stays pending and is read again at the next start), so the reader can stop.
    const stopping = this.#reader.stop()
    this.#spool.abandon('collector stopping')
    await stopping
    // Leaving the group: the device state is saved, the others take the partitions at their next round and claim what was in hand.
    await this.#leases.stop()
    await this.#writer.stop()
    this.#redis.disconnect()
  }

  /** The partition a device's messages are read from (see partitionKeyOf). */
  #partitionOfDevice (deviceId: string): number {
    return partitionOf(this.#options.partitionKeyOf?.(deviceId) ?? deviceId, this.#options.partitions)
  }

  #devicesOf (partition: number): (deviceId: string) => boolean {
    return (deviceId) => this.#partitionOfDevice(deviceId) === partition
  }

  /** Saves these partitions' device state under their lease tokens; a save the fence refuses is logged (the lease changed hands). */
  #saveState (leases: ReadonlyMap<number, number>): Promise<void> {
    const doors = this.#options.deviceState
    if (!doors || leases.size === 0) return Promise.resolve()
    const save = async (): Promise<void> => {
      for (const [partition, token] of leases) {
        // Exported when its turn comes, not when it was queued: the newest view goes out.
        const state = JSON.stringify(doors.export(this.#devicesOf(partition)))
        // A snapshot says "these messages were seen": their alerts are stored before it is.
        await this.#options.settled?.()
        if (!await this.#snapshots.save(partition, token, state)) {
          this.#options.logger.warn({ partition }, 'detection state not saved: the partition\'s lease changed hands (its new holder saves its own)')
        }
      }
    }
    const saved = this.#saving.then(save)
    this.#saving = saved.catch(() => undefined)
    return saved
  }

  /**
   * Appends, for each partition of the batch, the state of its devices that
   * changed, under the lease token the batch was read with. In the same
   * queue as the snapshots, exported when its turn comes and after the
   * findings so far are stored: a change is never appended before the
   * alerts of the messages that made it, nor after a later snapshot. A
   * refusal (the lease changed hands) is logged: the fenced XACK that
   * follows refuses the batch too, and the new holder handles it again.
   */
  #appendChanges (entries: readonly StreamEntry[]): Promise<void> {
    const doors = this.#options.deviceState
    if (!doors) return Promise.resolve()
    const tokens = new Map<number, number>()
    for (const entry of entries) if (entry.token !== undefined) tokens.set(entry.partition, entry.token)
    const append = async (): Promise<void> => {
      for (const [partition, token] of tokens) {
        const changed = doors.exportChanged(this.#devicesOf(partition))
        if (changed === undefined) continue
        await this.#options.settled?.()
        if (!await this.#snapshots.append(partition, token, JSON.stringify(changed))) {
          this.#options.logger.warn({ partition }, 'detection state changes not saved: the partition\'s lease changed hands')
        }
      }
    }
    const appended = this.#saving.then(append)
    this.#saving = appended.catch(() => undefined)
    return appended
  }

  /** Reads the partitions' saved device state and hands it to detection; a Redis failure fails the take (it is retried). */
  async #restoreState (taken: ReadonlyMap<number, number>): Promise<void> {
    const doors = this.#options.deviceState
    if (!doors) return
    const { logger } = this.#options
    const states = await this.#snapshots.load(taken.keys())
    for (const partition of taken.keys()) {
      const saved = states.get(partition)
      if (!saved) continue
      // The snapshot, then what changed since, oldest first: each newer view of a device replaces the older.
      let devices = 0
      for (const json of [...saved.snapshot ? [saved.snapshot.state] : [], ...saved.changes]) {
        let state: unknown
        try {
          state = JSON.parse(json)
        } catch (error) {
          logger.warn({ partition, err: (error as Error).message }, 'detection state of the partition is not JSON; its devices are learned afresh')
          continue
        }
        devices += doors.import(state)
      }
      logger.info({ partition, devices, savedAt: saved.snapshot?.savedAt, changes: saved.changes.length }, 'detection state of the partition restored')
    }
  }

  #forgetState (gone: readonly number[]): void {
    const doors = this.#options.deviceState
    if (!doors) return
    const set = new Set(gone)
    const forgotten = doors.forget((deviceId) => set.has(this.#partitionOfDevice(deviceId)))
    if (forgotten > 0) this.#options.logger.info({ partitions: gone, devices: forgotten }, 'detection state of partitions gone to another collector forgotten here')
  }

  #setConnected (connected: boolean): void {
    if (connected === this.#connected) return
    this.#connected = connected
    this.emit('connection', connected)
  }
}
