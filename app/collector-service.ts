/**
 * The collector, assembled: MQTT session → spool (durable) → store writer →
 * InfluxDB, or the embedded store in the data directory when no InfluxDB
 * is configured. One object to start and stop, for `placeguard collector`
 * and `placeguard up`.
 */
import { join } from 'node:path'
import { type AnyOutboxStore, createSink, Outbox, PgOutboxStore, takesAuditTrail } from '../delivery/index.ts'
import { FleetPki, pkiPaths } from '../pki/index.ts'
import type { Alert, AlertChange } from '../shared/alert-contract.ts'
import { showFences } from '../shared/fencing.ts'
import { systemClock } from '../shared/clock.ts'
import type { Config } from './config.ts'
import { formatDuration } from '../shared/duration.ts'
import { type Logger, logLinesDropped, logOutputStalledMs } from '../shared/logger.ts'
import { Collector, createInfluxSink, EmbeddedStore, lorawanRegistryOf, type LorawanRegistry, Spool, StoreWriter } from '../collector/index.ts'
import { Detection, DetectionStateKeeper, PgAlertFeed, PgAlertStore } from '../detection/index.ts'
import { connectDatabaseClient, createDatabasePool, migrate, redactDatabaseUrl } from '../db/index.ts'
import type { SecurityEvent } from '../shared/security-events.ts'
import { supplierCommandAudit } from './supplier-audit.ts'
import { copiedToSinks } from './audit-admin.ts'
import { type AsyncAuditStore, type AuditStore, PgAuditStore, SqliteAuditStore } from '../audit/index.ts'
import { PgAdvisoryStore } from '../advisories/index.ts'
import { ClusterIngest } from './cluster-ingest.ts'
import { OrderedWrites } from './ordered-writes.ts'
import { AdvisoryFeed } from './advisory-feed.ts'
import { FleetState, type LorawanRegistration, PgFleetStore } from '../fleet/index.ts'
import { isDeviceKind } from '../shared/ids.ts'

/** The pipeline's figures, for logs now and /metrics later. */
export interface PipelineMetrics {
  received: number
  telemetryStored: number
  eventsStored: number
  rejected: number
  /** LoRaWAN network server events heard through integrations. */
  lorawanEvents: number
  spooledPoints: number
  spoolBytes: number
  spoolMaxBytes: number
  written: number
  writeErrors: number
  /** Points the store refused for good, kept in the spool's rejected table. */
  storeRejected: number
  lastWriteLatencyMs: number | undefined
  /** Log lines dropped because stdout could not keep up. */
  logDropped: number
  /** Times the collector's own event loop stalled, and whether it is behind its input now (1) or not (0). */
  pipelineStalls: number
  pipelineBehind: number
}

export interface CollectorService {
  metrics: () => PipelineMetrics
  /** The input: one MQTT session, or in a cluster the Redis Streams. */
  collector: Collector | ClusterIngest
  detection: Detection
  spool: Spool
  writer: StoreWriter
  /** Present when telemetry goes to the embedded store. */
  embedded: EmbeddedStore | undefined
  /** Alert delivery to the SOC sinks (none configured: an outbox with no sinks); in PostgreSQL with a database URL, answering Promises then. */
  outbox: Outbox<AnyOutboxStore>
  /** Live fleet state for the API and dashboard. */
  fleet: FleetState
  /** Re-reads the PKI inventory into the fleet state (also every minute). */
  refreshInventory: () => void
  /** Subscribes to alert changes (the API's live stream, the terminal view); returns the unsubscribe. */
  onAlertChange: (listener: (change: AlertChange) => void) => () => void
  /** Resolves once what detection made of the input so far is stored: its alerts, then their deliveries' place in the outbox. */
  settled: () => Promise<void>
  /** The operator audit trail: `<data-dir>/audit.db`, or the group's PostgreSQL with a database URL. */
  auditTrail: AuditStore | AsyncAuditStore
  /** The synced advisories (advisories.db, or the group's PostgreSQL), re-read when a sync changed them: on the inventory's minute, and every 5 s in a group. */
  advisories: AdvisoryFeed
  start: () => Promise<void>
  stop: () => Promise<void>
}

const DEFAULT_SPOOL_BYTES = 512 * 1024 * 1024
/** In a group, how often each collector asks the database whether a sync changed the advisories (one row's read). */
const ADVISORY_POLL_MS = 5_000
/** The collector's log output taking nothing for this long is a pipeline alert (a stuck log shipper loses the audit trail). */
const LOG_STALL_ALERT_MS = 10_000

/** A DevEUI not in the registry re-reads it at most this often: `devices add` takes effect at the device's next uplink, and unknown DevEUIs sent on purpose cannot make the collector read the PKI more often. */
const REGISTRY_RELOAD_MIN_MS = 2_000

/**
 * Who each DevEUI belongs to, and the partition key of each device, as of
 * the last read of the PKI's registry; `update` swaps them in at once, so a
 * message is decoded against one registry or the next, never half of each.
 * With `load`, a DevEUI the registry does not know re-reads it (at most
 * every 2 s) before it is judged unknown: a device an operator just added
 * is not alerted as unknown until the next minute's refresh.
 */
export function lorawanDirectory (load?: () => readonly LorawanRegistration[], now: () => number = Date.now): { registry: LorawanRegistry, partitionKeyOf: (deviceId: string) => string, update: (registrations: readonly LorawanRegistration[]) => void } {
  let registry = lorawanRegistryOf([])
  let integrationOf = new Map<string, string>()
  let loadedAtMs = -Infinity
  const update = (registrations: readonly LorawanRegistration[]): void => {
    const valid = registrations.flatMap((r) => isDeviceKind(r.kind) ? [{ ...r, kind: r.kind }] : [])
    registry = lorawanRegistryOf(valid)
    integrationOf = new Map(valid.map((r) => [r.deviceId, r.integrationId]))
    loadedAtMs = now()
  }
  return {
    registry: {
      byDevEui: (devEui) => {
        const known = registry.byDevEui(devEui)
        if (known || !load || now() - loadedAtMs < REGISTRY_RELOAD_MIN_MS) return known
        loadedAtMs = now()
        try {
          update(load())
        } catch {
          // The PKI could not be read just now: judged on what was read last; the minute's refresh tries again.
        }
        return registry.byDevEui(devEui)
      },
    },
    // An integration's uplinks are appended to the streams under its id: its devices' state lives in that partition.
    partitionKeyOf: (deviceId) => integrationOf.get(deviceId) ?? deviceId,
    update,
  }
}

function mqttCollector (brokerUrl: string, spool: Spool, logger: Logger, paths: ReturnType<typeof pkiPaths>, onCommit: () => void, lorawanRegistry: LorawanRegistry): Collector {
  const collector = new Collector({
    brokerUrl, spool, logger, lorawanRegistry,
    tls: { caCert: paths.caCert, cert: paths.collectorCert, key: paths.collectorKey },
  })
  collector.onCommit = onCommit
  return collector
}

/** Tuning that is not configuration: for tests and benches. */
export interface CollectorServiceTuning {
  /** In a cluster, how often the held partitions' whole device state is saved (default 5 s). */
  snapshotEveryMs?: number
}

export function createCollectorService (config: Config, brokerUrl: string, logger: Logger, tuning: CollectorServiceTuning = {}): CollectorService {
  const paths = pkiPaths(config.dataDir)
  const spool = new Spool({ path: join(config.dataDir, 'spool.db'), maxBytes: config.collector.spoolMaxBytes ?? DEFAULT_SPOOL_BYTES })
  const embedded = config.influx ? undefined : new EmbeddedStore({ path: join(config.dataDir, 'telemetry.db'), retentionMs: (config.collector.retentionDays ?? 7) * 86_400_000 })
  const sink = config.influx ? createInfluxSink(config.influx) : embedded!
  const store = config.influx ? config.influx.url : 'embedded'
  const writer = new StoreWriter({
    spool, sink, batchSize: config.collector.batchSize ?? 5_000,
    onError: (message) => logger.error({ store }, `store write failed, spooling: ${message}`),
    onRejected: (rejected, total, reason) => logger.error({ store, rejected, total },
      `the store refused ${rejected} of ${total} points for good; they are kept in the spool's rejected table (${join(config.dataDir, 'spool.db')}): ${reason}`),
  })
  // Devices behind LoRaWAN network servers: read from the PKI's registry with the inventory (refreshInventory).
  const lorawan = lorawanDirectory(() => {
    const pki = new FleetPki(config.dataDir)
    try {
      return pki.initialized ? pki.lorawanDevices() : []
    } finally {
      pki.close()
    }
  })
  // In a cluster the input is the broker nodes' Redis Streams (acknowledged once stored); otherwise one MQTT session.
  const collector: Collector | ClusterIngest = config.redisUrl
    ? new ClusterIngest({
      redisUrl: config.redisUrl, partitions: config.cluster.partitions, consumer: config.cluster.collectorName, sink, batchSize: config.collector.batchSize ?? 5_000, logger,
      lorawanRegistry: lorawan.registry, partitionKeyOf: lorawan.partitionKeyOf, snapshotEveryMs: tuning.snapshotEveryMs,
      // What detection learned of a partition's devices moves with the partition between collectors.
      deviceState: {
        export: (filter) => detection.exportDeviceState(filter),
        trackChanges: () => detection.trackDeviceChanges(),
        exportChanged: (filter) => {
          const changed = detection.exportDeviceState(filter, { changedOnly: true })
          return changed.devices.length + changed.windows.length + (changed.lorawan?.length ?? 0) === 0 ? undefined : changed
        },
        import: (snapshot) => detection.importDeviceState(snapshot),
        // …and the fleet view takes the moved devices' facts from their new holder.
        forget: (filter) => { fleet.release(filter); return detection.forgetDevices(filter) },
      },
      // Entries are acknowledged, and snapshots saved, only once their alerts and deliveries are stored.
      settled: () => findingsSettled(),
      // A partition taken is fenced in the database before it is read: its previous reader's late alert writes are refused.
      onTaken: async (taken) => {
        if (!pool) return
        const stale = await showFences(pool, [...taken].map(([partition, token]) => ({ partition, token })))
        if (stale.length > 0) {
          logger.error({ partitions: stale }, 'the database has seen a newer lease token for these partitions than Redis just gave: was Redis\' data lost? Their alert writes will be refused until the tokens in Redis pass those in partition_fencing')
        }
      },
    })
    : mqttCollector(brokerUrl, spool, logger, paths, () => writer.kick(), lorawan.registry)
  // With a database URL the alerts, their history and the delivery outbox live in the group's PostgreSQL (migrated at start); otherwise in the data directory.
  const pool = config.databaseUrl
    ? createDatabasePool({ url: config.databaseUrl, applicationName: `placeguard-collector-${config.cluster.collectorName}`, logger })
    : undefined
  // A sink is held by the collector's name, not its process: restarted after a crash mid-send, it takes its sink back at once instead of waiting out its own lease.
  const outbox: Outbox<AnyOutboxStore> = new Outbox<AnyOutboxStore>({
    ...(pool ? { store: new PgOutboxStore({ pool, holder: `collector:${config.cluster.collectorName}` }) } : { path: join(config.dataDir, 'outbox.db') }),
    logger, deadLetterAfterMs: config.delivery.deadLetterAfterMs,
    sinks: config.delivery.sinks.map((sinkConfig) => ({ sink: createSink(sinkConfig), route: { minSeverity: sinkConfig.minSeverity, policies: sinkConfig.policies, audit: takesAuditTrail(sinkConfig) } })),
    onSinkFailing: (sink, detail) => detection.raiseSystemAlert({
      policy: 'delivery-failing', deviceId: `sink:${sink.name}`, severity: 'high',
      summary: `alerts cannot be delivered to ${sink.type} sink "${sink.name}" (failing since ${detail.since}): ${detail.lastError}`,
      evidence: { sink: sink.name, type: sink.type, since: detail.since, lastError: detail.lastError, deadLettered: detail.deadLettered },
    }),
    onSinkRecovered: (sink) => detection.clearSystemAlert('delivery-failing', `sink:${sink.name}`, 'the sink accepts deliveries again'),
  })
  // The fleet's last-seen state too: the group's (loaded at start), so each collector's view is the whole fleet.
  const fleet = pool ? new FleetState({ asyncStore: new PgFleetStore({ pool }), logger }) : new FleetState({ path: join(config.dataDir, 'fleet.db'), logger })
  // Operators' actions are recorded where the group can see them all: its PostgreSQL when there is one.
  const trail = pool ? new PgAuditStore({ pool }) : new SqliteAuditStore({ path: join(config.dataDir, 'audit.db') })
  const alertListeners = new Set<(change: AlertChange) => void>()
  // Over PostgreSQL, enqueueing is asynchronous and may fail: every change is queued in order and retried
  // (ordered-writes.ts), never also enqueued at once: its second copy could land after the sink confirmed the first
  // (which deletes it) and go out again, and it would not wait for an earlier change's retry. Over SQLite an enqueue
  // is durable on return, and a failure (a full disk) throws: that change, and every one after it until the queue
  // drains, goes the same ordered, retried way (a throw here would end the process).
  const deliveries = new OrderedWrites({ logger, what: 'alert delivery not queued in the outbox' })
  const toOutbox = (write: () => unknown): void => {
    if (pool) deliveries.push(async () => { await write() })
    else deliveries.runOrPush(write)
  }
  const enqueue = (change: AlertChange, options?: { unlessDelivered?: boolean }): void => toOutbox(() => outbox.enqueue(change, options))
  // Every entry the API and the supplier commands write goes to the syslog sinks as CEF too, through the outbox
  // (docs/audit-trail.md), queued in order and retried as alert changes are.
  const auditTrail = copiedToSinks(trail, (entry) => toOutbox(() => outbox.enqueueAudit(entry)),
    (error, entry) => logger.error({ err: error.message, seq: entry.seq }, 'audit trail entry recorded, but not queued for the syslog sinks'))
  // Alerts whose `opened` this collector has queued or made sure of (see onAlertRepeated), bounded.
  const knownOpened = new Set<string>()
  const rememberOpened = (id: string): void => {
    if (knownOpened.size >= 100_000) knownOpened.delete(knownOpened.values().next().value!)
    knownOpened.add(id)
  }
  // In a group the live stream and terminal view hear every collector's alert changes, this one's too, from the
  // database's feed: once each, each alert's in order (detection/pg-alert-feed.ts). Alone, they hear detection.
  const alertFeed = config.databaseUrl
    ? new PgAlertFeed({
      connect: () => connectDatabaseClient({ url: config.databaseUrl!, applicationName: `placeguard-collector-${config.cluster.collectorName}-feed` }),
      onChange: (change) => { for (const listener of alertListeners) listener(change) },
      logger,
    })
    : undefined
  const detection: Detection = new Detection({
    dataDir: config.dataDir, policiesDir: config.policiesDir, logger,
    // A device's alerts are written under the lease of its partition (shared/fencing.ts).
    ...(pool ? { alertStore: new PgAlertStore({ pool, fence: (deviceId) => collector instanceof ClusterIngest ? collector.fenceOf(deviceId) : undefined }) } : {}),
    // The service reads the inventory once a minute for the fleet view and hands it to cert-expiry too.
    certificateCheckMs: 0,
    // Alert changes go through the spool like everything else: to the store, and never lost.
    store: (points) => { spool.append(points); writer.kick() },
    command: (command) => collector.sendCommand(command),
    onAlertChange: (change, correlated) => {
      fleet.onAlertChange(change)
      if (!alertFeed) for (const listener of alertListeners) listener(change)
      // A device alert inside a storm reaches the SOC as the storm's one alert.
      if (!correlated) enqueue(change)
      if (change.change === 'opened') rememberOpened(change.alert.id)
    },
    // In a group, the first repeat heard here of an alert opened elsewhere — by this partition's
    // previous reader, perhaps killed between storing the alert and queueing its delivery — makes
    // sure its `opened` is queued: skipped if queued already (same delivery id) or confirmed.
    ...(pool ? {
      onAlertRepeated: (alert: Alert, correlated?: { stormAlertId: string }) => {
        if (knownOpened.has(alert.id)) return
        rememberOpened(alert.id)
        if (!correlated) enqueue({ change: 'opened', alert }, { unlessDelivered: true })
      },
    } : {}),
  })
  /** Everything detection made of the input so far is stored: its alerts, then their deliveries (a storm's come one turn later). */
  const findingsSettled = async (): Promise<void> => {
    do {
      await detection.settled()
      await new Promise((resolve) => setImmediate(resolve))
      await deliveries.settled()
    } while (detection.alerts.queuedWrites > 0 || deliveries.pending > 0)
  }
  // Every command a supplier sent is recorded in the operator audit trail (issue 17, supplier-audit.ts).
  const recordSupplierCommand = (event: SecurityEvent): void => {
    const entry = supplierCommandAudit(event)
    if (!entry) return
    try {
      const appended = auditTrail.append(entry)
      if (appended instanceof Promise) appended.catch((error: Error) => logger.error({ err: error.message, supplier: entry.actor }, 'supplier command not recorded in the audit trail'))
    } catch (error) {
      logger.error({ err: (error as Error).message, supplier: entry.actor }, 'supplier command not recorded in the audit trail')
    }
  }
  // Until its session is up (and what the broker kept for it has been read), the collector hears nothing.
  detection.setInputConnected(false)
  collector.on('connection', (connected) => detection.setInputConnected(connected))
  // One broker answers a collector's probe; a cluster's collectors read Redis streams that many nodes write.
  if (collector instanceof Collector) collector.on('broker-answering', (answering, waitedMs) => detection.setBrokerAnswering(answering, waitedMs))
  collector.on('telemetry', (point) => {
    fleet.onTelemetry(point)
    detection.onTelemetry(point)
  })
  collector.on('security-event', (event) => {
    fleet.onSecurityEvent(event)
    detection.onSecurityEvent(event)
    recordSupplierCommand(event)
  })
  collector.on('lorawan', (observation) => {
    fleet.onLorawan(observation)
    detection.onLorawan(observation)
  })
  // The group's advisories are the database's, so every collector matches the same ones whichever machine synced them.
  const advisories = new AdvisoryFeed(pool ? new PgAdvisoryStore({ pool }) : config.dataDir)
  let advisoriesFailing = false
  let advisoriesReading: Promise<void> | undefined
  // One read at a time; a call meanwhile (the minute's and the poll's together) waits for that one.
  const reloadAdvisories = (): Promise<void> => advisoriesReading ??= (async () => {
    try {
      if (await advisories.refresh()) {
        detection.setAdvisories(advisories.index)
        logger.info({ advisories: advisories.listing.length }, 'advisories loaded: firmware-vulnerable matches them from each device\'s next message')
      }
      advisoriesFailing = false
    } catch (error) {
      // Polled every few seconds in a group: said once per outage, not at every poll.
      if (!advisoriesFailing) logger.error({ err: (error as Error).message }, 'advisories not reloaded; the ones in force stay in force')
      advisoriesFailing = true
    }
  })().finally(() => { advisoriesReading = undefined })
  const readInventory = (): void => {
    const pki = new FleetPki(config.dataDir)
    try {
      if (!pki.initialized) return
      const entries = pki.list()
      const registrations = pki.lorawanDevices()
      lorawan.update(registrations)
      fleet.setInventory(entries)
      fleet.setLorawanDevices(registrations)
      detection.checkCertificates(entries)
      advisories.setDevices(entries)
    } finally {
      pki.close()
    }
  }
  // Called by a timer: an inventory that cannot be read (no file descriptor
  // left, a damaged or locked file) must not end the process, broker and all.
  let inventoryFailing = false
  const refreshInventory = (): void => {
    try {
      readInventory()
      if (inventoryFailing) logger.info('inventory read again')
      inventoryFailing = false
    } catch (error) {
      if (!inventoryFailing) {
        logger.error({ err: (error as Error).message, path: join(config.dataDir, 'pki') },
          'inventory not read: the fleet view, cert-expiry and advisories keep what they last read; tried again every minute')
      }
      inventoryFailing = true
    }
    void reloadAdvisories()
  }
  let warnedFull = false
  collector.on('spool-full', () => {
    if (warnedFull) return
    warnedFull = true
    logger.error({ spoolBytes: spool.bytes, maxBytes: spool.maxBytes }, 'collector: spool full; messages stay at the broker until the store drains it')
  })
  const metrics = (): PipelineMetrics => ({
    ...collector.metrics,
    spooledPoints: spool.pendingPoints + (collector instanceof ClusterIngest ? collector.pendingPoints : 0), spoolBytes: spool.bytes, spoolMaxBytes: spool.maxBytes,
    written: writer.counters.written, writeErrors: writer.counters.writeErrors, storeRejected: writer.counters.rejected, lastWriteLatencyMs: writer.counters.lastWriteLatencyMs,
    logDropped: logLinesDropped(), pipelineStalls: detection.pipeline.counters.stalls, pipelineBehind: detection.pipeline.behind ? 1 : 0,
  })
  // Once a minute: the pipeline's figures, and a warning well before the spool's bound.
  let nearFull = false
  const report = setInterval(() => {
    void Promise.resolve(outbox.metrics()).catch((error: Error) => ({ unavailable: error.message }))
      .then((delivery) => logger.info({ metrics: metrics(), delivery }, 'collector pipeline'))
    if (spool.nearFull !== nearFull) {
      nearFull = spool.nearFull
      if (nearFull) logger.error({ spoolBytes: spool.bytes, maxBytes: spool.maxBytes }, 'collector: spool over 90 % of its bound; is the store reachable?')
    }
  }, 60_000)
  report.unref()
  // Logging never holds up detection (shared/logger.ts), but a log nobody takes is itself a fault to report, once.
  let logStalled = false
  const watchLog = (): void => {
    const stalledMs = logOutputStalledMs()
    if (!logStalled && stalledMs >= LOG_STALL_ALERT_MS) {
      logStalled = true
      detection.raiseSystemAlert({
        policy: 'pipeline-stalled', deviceId: 'pipeline:log', severity: 'high',
        summary: `the collector's log output has taken nothing for ${formatDuration(stalledMs)}; log lines are buffered, then dropped and counted (placeguard_log_dropped_total); detection goes on`,
        evidence: { stalledMs, dropped: logLinesDropped() },
      })
    } else if (logStalled && stalledMs === 0) {
      logStalled = false
      detection.clearSystemAlert('pipeline-stalled', 'pipeline:log', 'the log output takes lines again')
    }
  }
  const fleetTimers = [setInterval(() => { void fleet.sync() }, 5_000), setInterval(refreshInventory, 60_000), setInterval(watchLog, 5_000)]
  if (pool) fleetTimers.push(setInterval(() => { void reloadAdvisories() }, ADVISORY_POLL_MS))
  for (const timer of fleetTimers) timer.unref()
  const stateKeeper = collector instanceof Collector
    ? new DetectionStateKeeper({ detection, path: join(config.dataDir, 'detection.db'), clock: systemClock, logger })
    : undefined
  const onAlertChange = (listener: (change: AlertChange) => void): (() => void) => {
    alertListeners.add(listener)
    return () => alertListeners.delete(listener)
  }
  return {
    metrics, collector, detection, spool, writer, embedded, outbox, fleet, refreshInventory, onAlertChange, settled: findingsSettled, auditTrail, advisories,
    start: async () => {
      // Alone, what detection learned outlives a restart in the data directory; a group hands it on with each partition.
      if (stateKeeper) {
        stateKeeper.restore()
        stateKeeper.start()
      }
      if (pool) {
        const { version, applied } = await migrate(pool, { logger })
        logger.info({ database: redactDatabaseUrl(config.databaseUrl!), version, applied: applied.map((m) => m.name) }, 'alerts in PostgreSQL')
        await alertFeed!.start()
        await fleet.load()
      }
      refreshInventory()
      // Detection starts with the advisories in force (the minute's refresh above began reading them).
      await reloadAdvisories()
      fleet.setOpenAlerts([...await detection.alerts.list({ status: 'open' }), ...await detection.alerts.list({ status: 'acknowledged' })])
      detection.start()
      outbox.start()
      if (outbox.sinkNames.length > 0) logger.info({ sinks: outbox.sinkNames }, 'alert delivery to SOC sinks')
      logger.info({ store: config.influx ? config.influx.url : join(config.dataDir, 'telemetry.db'), pending: spool.pendingPoints }, 'collector starting')
      writer.start()
      await collector.start()
    },
    stop: async () => {
      clearInterval(report)
      for (const timer of fleetTimers) clearInterval(timer)
      await collector.stop()
      stateKeeper?.stop()
      await deliveries.stop()
      await outbox.stop()
      await detection.stop()
      await alertFeed?.stop()
      await auditTrail.close()
      await fleet.close()
      await advisoriesReading
      await pool?.end()
      await writer.stop()
      await sink.close()
      spool.close()
    },
  }
}
