/**
 * The live state of the fleet, for the API and the dashboard: every device
 * the inventory knows or the collector has heard, whether it is connected
 * (broker events), when it last reported and with which firmware, its
 * open alerts, its quarantine, and its recent telemetry.
 *
 * Bounded: recent telemetry is a fixed ring of RING_SIZE readings per device
 * in typed arrays (about 5 KiB a device). Last-seen facts are flushed to
 * the fleet store (fleet-store.ts; by default SQLite, `<data-dir>/fleet.db`)
 * every few seconds, so "never seen" survives a restart; connection state is live only (a restarted collector learns it
 * from the next connect/disconnect events).
 *
 * In a collector group the store is the group's PostgreSQL, and each
 * collector receives only the devices of the partitions it holds. So a
 * fleet state over an asynchronous store also reads, every few seconds
 * (`sync`), the devices the others saved since its previous read, and
 * merges them in: every collector's view lists the whole fleet. Who is
 * right about a device is the collector that receives it: a device whose
 * telemetry arrived here is this collector's own, and what others saved
 * changes only its message count (a sum over the group, which may only
 * grow), never its last-seen, firmware, kind or site; for any other device
 * the newest sighting saved wins. A device stops being this collector's
 * own when its partition goes to another collector (`release`). Connection
 * state, quarantines, open alerts and the telemetry ring are still what
 * this collector heard (docs/cluster.md).
 */
import type { SecurityEvent } from '../shared/security-events.ts'
import type { InventoryEntry } from '../pki/index.ts'
import type { Alert, AlertChange, Severity } from '../shared/alert-contract.ts'
import { type Clock, systemClock } from '../shared/clock.ts'
import { DEVICE_KINDS, type DeviceKind, isDeviceKind } from '../shared/ids.ts'
import { READING_FIELDS } from '../shared/telemetry.ts'
import type { StoredPoint } from '../shared/stored-point.ts'
import type { LorawanObservation } from '../shared/lorawan.ts'
import type { Logger } from '../shared/logger.ts'
import { after, isPromise, type MaybeAsync } from '../shared/maybe-async.ts'
import type { AsyncFleetStore, DeviceRecord, DeviceUpdate, FleetStore } from './fleet-store.ts'
import { SqliteFleetStore } from './sqlite-fleet-store.ts'

export const RING_SIZE = 120
const SEVERITY_ORDER: Severity[] = ['info', 'low', 'medium', 'high', 'critical']

export type DeviceHealth = 'healthy' | 'alerting' | 'silent' | 'quarantined' | 'never-seen'
export const DEVICE_HEALTH: readonly DeviceHealth[] = ['healthy', 'alerting', 'silent', 'quarantined', 'never-seen']

/** How a device proves who it is: its own certificate, or a LoRaWAN network server's integration vouching for its DevEUI. */
export type DeviceIdentity = 'certificate' | 'lorawan'
export const DEVICE_IDENTITIES: readonly DeviceIdentity[] = ['certificate', 'lorawan']

export interface DeviceSummary {
  id: string
  kind: DeviceKind
  site: string
  identity: DeviceIdentity
  /** LoRaWAN: the integration it is registered to, and its DevEUI; null for a certificate device. */
  integration: string | null
  devEui: string | null
  health: DeviceHealth
  connected: boolean
  firmware: string | null
  lastSeenAt: string | null
  certNotAfter: string | null
  openAlerts: number
  messages: number
}

export interface TelemetrySample { ts: number, seq: number, fw: string, readings: Record<string, number> }

export interface DeviceCertificate { serial: string, notBefore: string, notAfter: string, keyAlgorithm: string, status: string }

/** A LoRaWAN device's last uplink as the gateways heard it: their ids (best first) and the best one's RSSI (dBm) and SNR (dB). */
export interface DeviceRadio { gateways: string[], rssi: number | null, snr: number | null, at: string }

/** A device registered for LoRaWAN (the PKI's registry), as the fleet view needs it. */
export interface LorawanRegistration { deviceId: string, kind: string, site: string, devEui: string, integrationId: string }

/** Gateway ids kept of an uplink: the best ones; more says nothing an operator reads here. */
const RADIO_GATEWAYS_KEPT = 8

interface OpenAlert { policy: string, severity: Severity }

interface Device {
  id: string
  kind: DeviceKind
  site: string
  lorawan: { integration: string, devEui: string } | null
  /** Live only, like connection state: the next uplink tells a restarted collector. */
  radio: DeviceRadio | null
  connected: boolean
  firmware: string | null
  lastSeenMs: number | null
  /** The group's count as last known, plus `unsaved`. */
  messages: number
  /** Messages received here since the last save: what the next save adds. */
  unsaved: number
  /** Its telemetry arrives here: what this collector received wins over what others saved. */
  own: boolean
  certificate: DeviceCertificate | null
  /** Ring of recent telemetry: columns ts, seq, then the kind's readings. */
  ring: Float64Array | null
  ringNext: number
  ringCount: number
  dirty: boolean
}

export interface DeviceFilter {
  q?: string
  kind?: DeviceKind
  site?: string
  identity?: DeviceIdentity
  health?: DeviceHealth
  connected?: boolean
  firmware?: string
  certExpiringDays?: number
}

export const DEVICE_SORTS = ['id', 'lastSeenAt', 'site', 'kind', 'health', 'firmware'] as const
export type DeviceSort = typeof DEVICE_SORTS[number]

export interface Counts { total: number, connected: number, silent: number, alerting: number }

export interface FleetSummary {
  devices: number
  connected: number
  silent: number
  quarantined: number
  neverSeen: number
  byHealth: Record<DeviceHealth, number>
  byKind: Record<DeviceKind, Counts>
  bySite: Record<string, Counts>
  openAlerts: Record<Severity, number>
}

export interface FleetStateOptions {
  /** Where last-seen facts are kept; when absent, a SQLite store at `path`. The fleet state closes it. */
  store?: FleetStore
  /**
   * A store shared by a collector group (PostgreSQL) instead: read by
   * `load()` before use (`FleetState.open` does both), saved to by
   * `flush()`, and read for the others' devices by `refresh()`. The fleet
   * state closes it.
   */
  asyncStore?: AsyncFleetStore
  /** The SQLite file of the default store (`:memory:` for none); required without a store. */
  path?: string
  clock?: Clock
  /** Where `sync` reports a failed flush or refresh, and `close` a last flush that failed. */
  logger?: Logger
}

/** Either store, called alike: the sync one's answers are plain values. */
type AnyStore = { [K in keyof FleetStore]: FleetStore[K] extends (...args: infer A) => infer R ? (...args: A) => MaybeAsync<R> : never }

/** A synchronous store's answer, as the plain value it is. */
function plain<T> (value: MaybeAsync<T>): T {
  if (isPromise(value)) throw new TypeError('a synchronous fleet store answered a Promise')
  return value
}

/**
 * What readers of the fleet (the HTTP API, the dashboard, /metrics) may
 * ask: the read side only. Writers (the collector service) hold the
 * FleetState itself.
 */
export interface FleetView {
  summary: () => FleetSummary
  summaryOf: (id: string) => DeviceSummary | undefined
  certificateOf: (id: string) => DeviceCertificate | null
  quarantineOf: (id: string) => { until: string, reason: string, by: string } | null
  radioOf: (id: string) => DeviceRadio | null
  telemetryOf: (id: string) => TelemetrySample[]
  list: (filter: DeviceFilter, sort?: DeviceSort, order?: 'asc' | 'desc', limit?: number, cursor?: number) => { items: DeviceSummary[], total: number, next: number | null }
  firmwareCounts: () => Map<string, number>
}

export class FleetState implements FleetView {
  readonly #store: AnyStore
  readonly #async: boolean
  readonly #clock: Clock
  readonly #logger: Logger | undefined
  readonly #devices = new Map<string, Device>()
  /** Open (and acknowledged) alerts per device, for health. */
  readonly #alerts = new Map<string, Map<string, OpenAlert>>()
  readonly #quarantined = new Map<string, { until: string, reason: string, by: string }>()
  #fleetFirmware: Map<string, number> | undefined
  /** The last queued store call (asynchronous store): saves and reads run one at a time, in order. */
  #tail: Promise<unknown> = Promise.resolve()
  #syncing: Promise<void> | undefined
  /** Where the next refresh reads the store's changes from; none until the first read. */
  #position: string | undefined
  /** Consecutive failures of `sync`'s flush and refresh: the first is logged, and the recovery. */
  #flushFailures = 0
  #refreshFailures = 0

  constructor (options: FleetStateOptions) {
    this.#clock = options.clock ?? systemClock
    this.#logger = options.logger
    if (!options.store && !options.asyncStore && options.path === undefined) throw new TypeError('a fleet state needs a store or a path')
    this.#async = options.asyncStore !== undefined
    this.#store = options.asyncStore ?? options.store ?? new SqliteFleetStore({ path: options.path! })
    // A synchronous store is read at once; an asynchronous one by load().
    if (!this.#async) plain(this.#read(true))
  }

  /** A fleet state over an asynchronous store, its devices loaded. */
  static async open (options: FleetStateOptions & { asyncStore: AsyncFleetStore }): Promise<FleetState> {
    const fleet = new FleetState(options)
    await fleet.load()
    return fleet
  }

  /** Reads every device of the asynchronous store into the view: before the first telemetry (FleetState.open, or the collector's start). */
  async load (): Promise<void> {
    if (!this.#async) throw new TypeError('a fleet state over a synchronous store loads it when built')
    await this.#queue(() => this.#read(true))
  }

  get size (): number {
    return this.#devices.size
  }

  /** The inventory's device certificates: devices never heard from appear as `never-seen`. */
  setInventory (entries: InventoryEntry[]): void {
    for (const entry of entries) {
      if (entry.role !== 'device' || !entry.kind || !entry.site) continue
      // A device registered for LoRaWAN has no certificate to show (setLorawanDevices brings it).
      if (entry.identity === 'lorawan') continue
      const device = this.#device(entry.deviceId, entry.kind, entry.site)
      // The active certificate wins over older, revoked ones (the inventory lists them all).
      if (device.certificate && device.certificate.status === 'active' && entry.effectiveStatus !== 'active') continue
      device.certificate = { serial: entry.serial, notBefore: entry.notBefore, notAfter: entry.notAfter, keyAlgorithm: entry.keyAlgorithm, status: entry.effectiveStatus }
    }
  }

  /**
   * The devices registered for LoRaWAN (no certificate: a network server's
   * integration speaks for them): never heard from, they appear as
   * `never-seen`, with identity `lorawan`. A device no longer registered
   * keeps what it was shown as; it is one no longer heard.
   */
  setLorawanDevices (registrations: readonly LorawanRegistration[]): void {
    for (const registration of registrations) {
      if (!isDeviceKind(registration.kind)) continue
      const device = this.#device(registration.deviceId, registration.kind, registration.site)
      device.lorawan = { integration: registration.integrationId, devEui: registration.devEui }
    }
  }

  /** A network server's event: a registered device's last gateways and signal (an uplink's, which carries them). */
  onLorawan (observation: LorawanObservation): void {
    const { device: registered, message } = observation
    if (!registered || message.gateways.length === 0 || !isDeviceKind(registered.kind)) return
    const device = this.#device(registered.deviceId, registered.kind, registered.site)
    const ranked = [...message.gateways].sort((a, b) => b.rssi - a.rssi || b.snr - a.snr)
    device.radio = {
      gateways: ranked.slice(0, RADIO_GATEWAYS_KEPT).map((gateway) => gateway.gatewayId),
      rssi: ranked[0]!.rssi, snr: ranked[0]!.snr, at: new Date(message.receivedAtMs).toISOString(),
    }
  }

  /** Alerts open at start (from the alert book). */
  setOpenAlerts (alerts: Alert[]): void {
    this.#alerts.clear()
    for (const alert of alerts) if (alert.status !== 'resolved') this.#trackAlert(alert)
  }

  onTelemetry (point: StoredPoint, receivedAtMs = this.#clock.now()): void {
    const id = point.tags.device
    const site = point.tags.site
    if (!id || !site || !isDeviceKind(point.measurement)) return
    const device = this.#device(id, point.measurement, site)
    const fields = READING_FIELDS[device.kind]
    device.ring ??= new Float64Array(RING_SIZE * (2 + fields.length))
    const width = 2 + fields.length
    const at = device.ringNext * width
    device.ring[at] = point.timestampMs
    device.ring[at + 1] = Number(point.fields.seq)
    fields.forEach((field, i) => { device.ring![at + 2 + i] = Number(point.fields[field]) })
    device.ringNext = (device.ringNext + 1) % RING_SIZE
    device.ringCount = Math.min(RING_SIZE, device.ringCount + 1)
    // A LoRaWAN reading may carry no firmware (collector/lorawan.ts): the last one known stays.
    if (typeof point.fields.fw === 'string') {
      if (device.firmware !== point.fields.fw) this.#fleetFirmware = undefined
      device.firmware = point.fields.fw
    }
    device.lastSeenMs = receivedAtMs
    device.messages++
    device.unsaved++
    device.own = true
    device.dirty = true
  }

  onSecurityEvent (event: SecurityEvent): void {
    if (!event.deviceId) return
    // A device may connect before the inventory is re-read or its first message arrives.
    const known = event.kind && isDeviceKind(event.kind) && event.site ? this.#device(event.deviceId, event.kind, event.site) : undefined
    const device = known ?? this.#devices.get(event.deviceId)
    if (event.type === 'connect' && device) device.connected = true
    else if ((event.type === 'disconnect' || event.type === 'session-revoked') && device) device.connected = false
    else if (event.type === 'quarantined') {
      const details = event.details ?? {}
      this.#quarantined.set(event.deviceId, { until: String(details.until ?? ''), reason: event.reason, by: String(details.by ?? 'unknown') })
    } else if (event.type === 'quarantine-lifted') this.#quarantined.delete(event.deviceId)
  }

  onAlertChange ({ alert }: AlertChange): void {
    if (alert.status === 'resolved') this.#alerts.get(alert.deviceId)?.delete(alert.id)
    else this.#trackAlert(alert)
  }

  /**
   * These devices' telemetry now goes to another collector (their
   * partition moved): from now on the newest sighting saved by any
   * collector is theirs here, and their connection state is unknown here
   * (shown as not connected). What this collector counted and has not yet
   * saved is still saved by the next flush. Answers how many were released.
   */
  release (filter: (deviceId: string) => boolean): number {
    let released = 0
    for (const device of this.#devices.values()) {
      if (!device.own || !filter(device.id)) continue
      device.own = false
      device.connected = false
      released++
    }
    return released
  }

  /**
   * Writes last-seen facts of devices that reported since the last flush.
   * Over a synchronous store at once (and throws when the save fails);
   * over an asynchronous one a Promise, after any flush or read before it.
   * A failed save leaves its devices, and the messages it would have
   * added, to the next flush.
   */
  flush (): MaybeAsync<void> {
    return this.#async ? this.#queue(() => this.#flushNow()) : this.#flushNow()
  }

  /**
   * Merges into the view the devices saved since the previous read (by the
   * other collectors, and this one's own saves, which change nothing here);
   * the first read takes every device. Answers how many devices were read.
   */
  refresh (): MaybeAsync<number> {
    const read = () => this.#read(this.#position === undefined)
    return this.#async ? this.#queue(read) : read()
  }

  /**
   * What the collector's timer calls every few seconds: a flush, then
   * (asynchronous store) a refresh. Never rejects: a failure is logged
   * (the first of a run, and the recovery) and tried again at the next
   * call; a call while the previous one runs waits for that one instead of
   * starting another.
   */
  sync (): Promise<void> {
    this.#syncing ??= this.#syncOnce().finally(() => { this.#syncing = undefined })
    return this.#syncing
  }

  /** Flushes and closes the store. Over an asynchronous store a last flush that fails is logged: those devices' facts since the previous flush are lost. */
  close (): MaybeAsync<void> {
    if (!this.#async) {
      plain(this.#flushNow())
      plain(this.#store.close())
      return
    }
    return (async () => {
      await this.#syncing
      try {
        await this.flush()
      } catch (error) {
        this.#logger?.error({ devices: this.#dirtyCount(), err: (error as Error).message }, 'fleet state not saved at stop: these devices\' last-seen facts since the previous flush are lost')
      }
      await this.#store.close()
    })()
  }

  summaryOf (id: string): DeviceSummary | undefined {
    const device = this.#devices.get(id)
    return device && this.#summary(device)
  }

  certificateOf (id: string): DeviceCertificate | null {
    return this.#devices.get(id)?.certificate ?? null
  }

  radioOf (id: string): DeviceRadio | null {
    return this.#devices.get(id)?.radio ?? null
  }

  quarantineOf (id: string): { until: string, reason: string, by: string } | null {
    const entry = this.#quarantined.get(id)
    return entry && Date.parse(entry.until) > this.#clock.now() ? entry : null
  }

  /** Recent telemetry, oldest first. */
  telemetryOf (id: string): TelemetrySample[] {
    const device = this.#devices.get(id)
    if (!device?.ring) return []
    const fields = READING_FIELDS[device.kind]
    const width = 2 + fields.length
    const samples: TelemetrySample[] = []
    for (let i = 0; i < device.ringCount; i++) {
      const slot = (device.ringNext - device.ringCount + i + RING_SIZE) % RING_SIZE
      const at = slot * width
      samples.push({
        ts: device.ring[at]!, seq: device.ring[at + 1]!, fw: device.firmware ?? '',
        readings: Object.fromEntries(fields.map((field, j) => [field, device.ring![at + 2 + j]!])),
      })
    }
    return samples
  }

  /** Filtered, sorted, paged: the cursor is the offset into the sorted result (opaque to clients). */
  list (filter: DeviceFilter, sort: DeviceSort = 'id', order: 'asc' | 'desc' = 'asc', limit = 100, cursor = 0): { items: DeviceSummary[], total: number, next: number | null } {
    const now = this.#clock.now()
    const q = filter.q?.toLowerCase()
    const matches: DeviceSummary[] = []
    for (const device of this.#devices.values()) {
      if (filter.kind && device.kind !== filter.kind) continue
      if (filter.site && device.site !== filter.site) continue
      if (filter.identity && (device.lorawan ? 'lorawan' : 'certificate') !== filter.identity) continue
      if (filter.connected !== undefined && device.connected !== filter.connected) continue
      if (filter.firmware && device.firmware !== filter.firmware) continue
      if (q && !device.id.includes(q) && !device.site.includes(q)) continue
      if (filter.certExpiringDays !== undefined &&
        !(device.certificate && Date.parse(device.certificate.notAfter) - now <= filter.certExpiringDays * 86_400_000)) continue
      const summary = this.#summary(device)
      if (filter.health && summary.health !== filter.health) continue
      matches.push(summary)
    }
    const key = (d: DeviceSummary): string | number => sort === 'lastSeenAt' ? (d.lastSeenAt ?? '') : sort === 'health' ? DEVICE_HEALTH.indexOf(d.health) : (d[sort] ?? '')
    const direction = order === 'asc' ? 1 : -1
    matches.sort((a, b) => {
      const ka = key(a)
      const kb = key(b)
      return (ka < kb ? -1 : ka > kb ? 1 : a.id < b.id ? -1 : 1) * direction
    })
    const items = matches.slice(cursor, cursor + limit)
    return { items, total: matches.length, next: cursor + limit < matches.length ? cursor + limit : null }
  }

  summary (): FleetSummary {
    const empty = (): Counts => ({ total: 0, connected: 0, silent: 0, alerting: 0 })
    const result: FleetSummary = {
      devices: 0, connected: 0, silent: 0, quarantined: 0, neverSeen: 0,
      byHealth: Object.fromEntries(DEVICE_HEALTH.map((health) => [health, 0])) as Record<DeviceHealth, number>,
      byKind: Object.fromEntries(DEVICE_KINDS.map((kind) => [kind, empty()])) as Record<DeviceKind, Counts>,
      bySite: {}, openAlerts: { info: 0, low: 0, medium: 0, high: 0, critical: 0 },
    }
    for (const device of this.#devices.values()) {
      const { health } = this.#summary(device)
      result.devices++
      result.byHealth[health]++
      if (device.connected) result.connected++
      if (health === 'silent') result.silent++
      if (health === 'quarantined') result.quarantined++
      if (health === 'never-seen') result.neverSeen++
      for (const counts of [result.byKind[device.kind], result.bySite[device.site] ??= empty()]) {
        counts.total++
        if (device.connected) counts.connected++
        if (health === 'silent') counts.silent++
        if (health === 'alerting') counts.alerting++
      }
    }
    for (const alerts of this.#alerts.values()) for (const alert of alerts.values()) result.openAlerts[alert.severity]++
    return result
  }

  /** Firmware versions in use and how many devices run each. */
  firmwareCounts (): Map<string, number> {
    if (!this.#fleetFirmware) {
      this.#fleetFirmware = new Map()
      for (const device of this.#devices.values()) {
        if (device.firmware) this.#fleetFirmware.set(`${device.kind} ${device.firmware}`, (this.#fleetFirmware.get(`${device.kind} ${device.firmware}`) ?? 0) + 1)
      }
    }
    return this.#fleetFirmware
  }

  #device (id: string, kind: DeviceKind, site: string): Device {
    let device = this.#devices.get(id)
    if (!device) {
      device = this.#added(id, kind, site)
      device.dirty = true
    } else if (device.kind !== kind || device.site !== site) {
      // Re-provisioned elsewhere: the ring's columns follow the kind.
      Object.assign(device, { kind, site, ring: null, ringNext: 0, ringCount: 0, dirty: true })
    }
    return device
  }

  #added (id: string, kind: DeviceKind, site: string): Device {
    const device: Device = { id, kind, site, lorawan: null, radio: null, connected: false, firmware: null, lastSeenMs: null, messages: 0, unsaved: 0, own: false, certificate: null, ring: null, ringNext: 0, ringCount: 0, dirty: false }
    this.#devices.set(id, device)
    return device
  }

  /** Runs store calls of an asynchronous store one after another: a read never meets a save half done. */
  #queue<T> (work: () => MaybeAsync<T>): Promise<T> {
    const run = this.#tail.then(work)
    this.#tail = run.catch(() => undefined)
    return run
  }

  #flushNow (): MaybeAsync<void> {
    const dirty = [...this.#devices.values()].filter((device) => device.dirty)
    if (dirty.length === 0) return
    const updates: DeviceUpdate[] = dirty.map(({ id, kind, site, firmware, lastSeenMs, unsaved }) => ({ id, kind, site, firmware, lastSeenMs, newMessages: unsaved }))
    // Taken now: what arrives while an asynchronous save is out belongs to the next one.
    for (const device of dirty) Object.assign(device, { dirty: false, unsaved: 0 })
    // Only once saved: a failed save leaves them, and their count, to the next flush.
    const failed = (error: unknown): never => {
      dirty.forEach((device, i) => { device.dirty = true; device.unsaved += updates[i]!.newMessages })
      throw error
    }
    try {
      const saved = this.#store.save(updates)
      if (isPromise(saved)) return saved.catch(failed)
    } catch (error) {
      failed(error)
    }
  }

  /** One read of the store, all of it or the changes since the last, merged into the view. */
  #read (full: boolean): MaybeAsync<number> {
    const read = full || this.#position === undefined ? this.#store.load() : this.#store.loadChangedSince(this.#position)
    return after(read, ({ devices, position }) => {
      this.#position = position
      for (const record of devices) this.#merge(record)
      return devices.length
    })
  }

  /** A device as the store keeps it, into the view (see the file's comment for who wins). */
  #merge (record: DeviceRecord): void {
    if (!isDeviceKind(record.kind)) return
    const device = this.#devices.get(record.id) ?? this.#added(record.id, record.kind, record.site)
    // The group's count only grows; what this collector has not saved yet comes on top.
    device.messages = Math.max(device.messages - device.unsaved, record.messages) + device.unsaved
    if (device.own) return
    if (record.lastSeenMs === null ? device.lastSeenMs !== null || device.dirty : device.lastSeenMs !== null && record.lastSeenMs < device.lastSeenMs) return
    if (device.kind !== record.kind) Object.assign(device, { kind: record.kind, ring: null, ringNext: 0, ringCount: 0 })
    if (device.firmware !== record.firmware) this.#fleetFirmware = undefined
    Object.assign(device, { site: record.site, firmware: record.firmware, lastSeenMs: record.lastSeenMs })
  }

  async #syncOnce (): Promise<void> {
    try {
      await this.flush()
      if (this.#flushFailures > 0) this.#logger?.info({ failedFlushes: this.#flushFailures }, 'fleet state saved again')
      this.#flushFailures = 0
    } catch (error) {
      if (this.#flushFailures++ === 0) this.#logger?.warn({ devices: this.#dirtyCount(), err: (error as Error).message }, 'fleet state not saved; its devices stay to be saved at the next flush')
    }
    if (!this.#async) return
    try {
      await this.refresh()
      if (this.#refreshFailures > 0) this.#logger?.info({ failedRefreshes: this.#refreshFailures }, 'fleet state read from the group again')
      this.#refreshFailures = 0
    } catch (error) {
      if (this.#refreshFailures++ === 0) this.#logger?.warn({ err: (error as Error).message }, 'other collectors\' devices not read; the view keeps what it had until the next refresh')
    }
  }

  #dirtyCount (): number {
    let dirty = 0
    for (const device of this.#devices.values()) if (device.dirty) dirty++
    return dirty
  }

  #trackAlert (alert: Alert): void {
    let alerts = this.#alerts.get(alert.deviceId)
    if (!alerts) this.#alerts.set(alert.deviceId, alerts = new Map())
    alerts.set(alert.id, { policy: alert.policy, severity: alert.severity })
  }

  #summary (device: Device): DeviceSummary {
    const alerts = this.#alerts.get(device.id)
    const open = alerts ? [...alerts.values()] : []
    let health: DeviceHealth = 'healthy'
    if (this.quarantineOf(device.id)) health = 'quarantined'
    else if (device.lastSeenMs === null) health = 'never-seen'
    else if (open.some((a) => a.policy === 'device-silent')) health = 'silent'
    else if (open.some((a) => SEVERITY_ORDER.indexOf(a.severity) >= SEVERITY_ORDER.indexOf('medium'))) health = 'alerting'
    return {
      id: device.id, kind: device.kind, site: device.site,
      identity: device.lorawan ? 'lorawan' : 'certificate', integration: device.lorawan?.integration ?? null, devEui: device.lorawan?.devEui ?? null,
      health, connected: device.connected, firmware: device.firmware,
      lastSeenAt: device.lastSeenMs === null ? null : new Date(device.lastSeenMs).toISOString(),
      certNotAfter: device.certificate?.notAfter ?? null, openAlerts: open.length, messages: device.messages,
    }
  }
}
