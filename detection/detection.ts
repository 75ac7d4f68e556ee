/**
 * Detection, wired: the collector's telemetry and security events go
 * through the policy engine, findings become alerts in the alert book
 * (`<data-dir>/alerts.db`), and alert changes are logged and stored in the
 * `alert` measurement. Policy files are reloaded when they change; a
 * broken file is reported and the policies in force stay in force.
 *
 * Automated response: when an alert opens under a policy with
 * `response.quarantine`, the device is quarantined at the broker through
 * `command` (the collector's control topic); the broker's `quarantined` and
 * `quarantine-lifted` events are recorded on the alert.
 */
import { watch, type FSWatcher } from 'node:fs'
import { join } from 'node:path'
import type { QuarantineCommand } from '../shared/control.ts'
import type { SecurityEvent } from '../shared/security-events.ts'
import { type CertificateEntry, FleetPki, type InventoryEntry } from '../pki/index.ts'
import type { Alert, AlertChange, AlertPolicy } from '../shared/alert-contract.ts'
import { type DeviceSnapshot, type Finding, loadPolicySet, type PolicySet, PolicyEngine, type TelemetryObservation, type Verdict } from '../policies/index.ts'
import { AlertBook, type Raisable } from './alert-book.ts'
import type { AsyncAlertStore } from './alert-store.ts'
import { after, allOf, isPromise, type MaybeAsync } from '../shared/maybe-async.ts'
import { type Clock, systemClock } from '../shared/clock.ts'
import { formatDuration } from '../shared/duration.ts'
import { isValidId } from '../shared/ids.ts'
import type { Logger } from '../shared/logger.ts'
import { PipelineHealth } from './pipeline-health.ts'
import { type Storm, StormGuard } from './storm-guard.ts'
import type { StoredPoint } from '../shared/stored-point.ts'
import { LORAWAN_RADIO_FIELDS, type LorawanObservation } from '../shared/lorawan.ts'
import type { AdvisoryIndex, DeviceProduct } from '../shared/advisory-match.ts'

export const ALERT_MEASUREMENT = 'alert'
export const SHIPPED_POLICIES_DIR = join(import.meta.dirname, '..', 'policies')

export interface DetectionOptions {
  dataDir: string
  policiesDir?: string
  logger: Logger
  /** Where alert changes are stored (the spool). */
  store: (points: StoredPoint[]) => void
  tickMs?: number
  /** How often cert-expiry reads the inventory itself; 0 when the caller passes it to checkCertificates (default 60 s). */
  certificateCheckMs?: number
  /** Sends a command to the broker (quarantine, lift); without it, automated responses are logged as failed. */
  command?: (command: QuarantineCommand) => Promise<void>
  /**
   * Every alert change that is news (not a repeat folded into an alert):
   * the SOC outbox, the live stream. `correlated` names the storm alert
   * that stands for it at the SOC (the outbox skips it; the API keeps it).
   */
  onAlertChange?: (change: AlertChange, correlated?: { stormAlertId: string }) => void
  /**
   * A repeat folded into a live alert (not news: no onAlertChange). In a
   * collector group it may be the first this collector hears of an alert
   * another opened, e.g. the previous reader of a partition, killed before
   * it queued the alert's delivery (app/collector-service.ts).
   */
  onAlertRepeated?: (alert: Alert, correlated?: { stormAlertId: string }) => void
  clock?: Clock
  /**
   * The alerts in a shared asynchronous store (PostgreSQL, a collector
   * group) instead of `<data-dir>/alerts.db`. Findings are then written in
   * arrival order, retried while the store fails (alert-book.ts).
   */
  alertStore?: AsyncAlertStore
}

/** The pipeline alert's key: the collector process (`delivery-failing` keys on its sink alike). */
export const PIPELINE_ALERT_KEY = 'pipeline:collector'
/** Alerts folded into a storm, remembered so their later changes are folded too (bounded, oldest forgotten). */
const MAX_CORRELATED = 100_000

export interface DetectionCounters {
  /** Findings kept from alerting by a maintenance window or suppression. */
  quieted: number
  quarantinesRequested: number
  quarantineFailures: number
}

export class Detection {
  readonly alerts: AlertBook
  /** Fed only through this class's inputs, so what it judges is what the alert book records. */
  readonly #engine: PolicyEngine
  readonly #options: DetectionOptions
  readonly #policiesDir: string
  #policySet: PolicySet
  readonly counters: DetectionCounters = { quieted: 0, quarantinesRequested: 0, quarantineFailures: 0 }
  #timers: NodeJS.Timeout[] = []
  #watcher: FSWatcher | undefined
  /** Devices the broker reports quarantined, until when (ms): their silence is expected. */
  readonly #quarantined = new Map<string, number>()
  /** Whether the collector keeps up with its input (stalls, backlog): the engine's catching-up switch. */
  readonly pipeline: PipelineHealth
  readonly #storms: StormGuard
  /** Device alert id → the id of the storm alert that stands for it at the SOC. */
  readonly #correlated = new Map<string, string>()
  readonly #clock: Clock

  constructor (options: DetectionOptions) {
    this.#options = options
    this.#policiesDir = options.policiesDir ?? SHIPPED_POLICIES_DIR
    this.#policySet = loadPolicySet(this.#policiesDir)
    const clock = options.clock ?? systemClock
    this.#clock = clock
    // One clock for all of it: the engine's rate windows and silences are measured against the receive times given here.
    this.#engine = new PolicyEngine(this.#policySet.policies.map((l) => l.policy), clock, this.#policySet.windows)
    this.alerts = options.alertStore
      ? new AlertBook({ asyncStore: options.alertStore, clock, logger: options.logger })
      : new AlertBook({ path: join(options.dataDir, 'alerts.db'), clock })
    this.#storms = new StormGuard({ clock })
    this.pipeline = new PipelineHealth({
      clock,
      onBehind: (behind, reconnectAllowanceMs) => {
        this.#engine.setCatchingUp(behind, reconnectAllowanceMs)
        if (behind) options.logger.info({ behind }, 'detection: the collector is behind its input; silence is not judged until it catches up')
        else options.logger.info({ behind, reconnectAllowanceMs }, reconnectAllowanceMs > 0 ? `detection: the collector has caught up; devices have ${formatDuration(reconnectAllowanceMs)} more to reconnect before silence counts` : 'detection: the collector has caught up')
      },
      onReplayWindow: (untilMs) => this.#engine.expectReplayUntil(untilMs),
      onAlert: (summary, evidence) => this.raiseSystemAlert({ policy: 'pipeline-stalled', deviceId: PIPELINE_ALERT_KEY, severity: 'high', summary, evidence }),
      onRecovered: (reason) => this.clearSystemAlert('pipeline-stalled', PIPELINE_ALERT_KEY, reason),
    })
  }

  start (): void {
    this.pipeline.start()
    this.#timers.push(setInterval(() => {
      // A tick that comes late after a freeze must learn of the freeze before it judges silence.
      this.pipeline.beat()
      this.#apply(this.#engine.tick())
    }, this.#options.tickMs ?? 5_000))
    // Without a service reading the inventory each minute (see service.ts), check it here on the same cadence.
    if (this.#options.certificateCheckMs !== 0) {
      this.checkCertificates()
      this.#timers.push(setInterval(() => this.checkCertificates(), this.#options.certificateCheckMs ?? 60_000))
    }
    for (const timer of this.#timers) timer.unref()
    let pending: NodeJS.Timeout | undefined
    this.#watcher = watch(this.#policiesDir, () => {
      clearTimeout(pending)
      pending = setTimeout(() => this.reloadPolicies(), 200) // editors write in several steps
    })
  }

  /**
   * Stops the rules that time drives (silence and bursts, on the tick, and
   * the certificate checks); what still arrives is judged as before. For
   * an input PlaceGuard takes away itself: `placeguard up` stopping its
   * demo fleet, whose devices fall silent on purpose while their last
   * messages are acknowledged (up to 9 s), and were judged silent.
   */
  stopTimeRules (): void {
    for (const timer of this.#timers.splice(0)) clearInterval(timer)
  }

  /** Stops the timers and closes the alert book (an asynchronous one once its queued writes are stored). */
  stop (): MaybeAsync<void> {
    this.stopTimeRules()
    this.pipeline.stop()
    this.#watcher?.close()
    return this.alerts.close()
  }

  /** Resolves once every alert write asked for so far is stored and published (immediate over SQLite). */
  settled (): Promise<void> {
    return this.alerts.settled()
  }

  /** A background alert write's failure: logged, never thrown into the message path. */
  #background (work: MaybeAsync<unknown>, what: string): void {
    // A stale lease (shared/fencing.ts) is no fault: the partition's new holder handles the same input.
    if (isPromise(work)) work.catch((error: Error) => this.#options.logger[(error as { permanent?: boolean }).permanent === true ? 'warn' : 'error']({ err: error.message }, `alert not stored: ${what}`))
  }

  /** A device's current rate against its learned baseline, per minute (the API's device page); undefined until it has reported. */
  rateOf (deviceId: string): { currentPerMinute: number, baselinePerMinute: number | null, messages: number } | undefined {
    return this.#engine.rateOf(deviceId)
  }

  /** Telemetry messages set aside as redeliveries of one already seen (the broker's QoS 1 resends). */
  get redeliveries (): number {
    return this.#engine.redeliveries
  }

  /** The policies and quiet windows in force (a broken file on disk does not change them). */
  get policySet (): PolicySet {
    return this.#policySet
  }

  reloadPolicies (): boolean {
    try {
      const set = loadPolicySet(this.#policiesDir)
      this.#engine.setPolicies(set.policies.map((l) => l.policy), set.windows)
      this.#policySet = set
      this.#options.logger.info({ policies: set.policies.length, quietWindows: set.windows.length }, 'policies reloaded')
      this.checkCertificates() // thresholds may have changed
      return true
    } catch (error) {
      this.#options.logger.error({ err: (error as Error).message }, 'policy files not reloaded; the policies in force stay in force')
      return false
    }
  }

  onTelemetry (point: StoredPoint, receivedAtMs = this.#clock.now()): void {
    const { seq, fw, ...fields } = point.fields
    // A LoRaWAN device's point carries the uplink's radio side too (collector/lorawan.ts): the path, not a reading.
    const readings = Object.fromEntries(Object.entries(fields).filter(([name]) => !(LORAWAN_RADIO_FIELDS as readonly string[]).includes(name)))
    const observation: TelemetryObservation = {
      deviceId: point.tags.device!, site: point.tags.site!, kind: point.measurement as TelemetryObservation['kind'],
      // A LoRaWAN reading may carry no firmware: '' is no version, which the firmware rules pass over.
      ts: point.timestampMs, seq: seq as number, fw: (fw as string | undefined) ?? '', readings: readings as Record<string, number>, receivedAtMs,
    }
    const verdict = this.#engine.onTelemetry(observation)
    this.pipeline.onMessage(observation.deviceId, verdict.backlogMs ?? 0)
    this.#apply(verdict, observation)
  }

  /**
   * The learned state of the devices `filter` picks, as plain JSON (a
   * versioned DeviceSnapshot): what travels with a partition that moves to
   * another collector of the group.
   */
  exportDeviceState (filter: (deviceId: string) => boolean, options: { changedOnly?: boolean } = {}): DeviceSnapshot {
    return this.#engine.exportDevices(filter, options)
  }

  /** Remembers from now on which devices' state changes, for exportDeviceState(filter, { changedOnly: true }). */
  trackDeviceChanges (): void {
    this.#engine.trackChanges()
  }

  /**
   * Takes in a snapshot exportDeviceState made, here or on another
   * collector, before the devices' next messages are heard. One of another
   * version, or that does not validate, is ignored and the reason logged:
   * its devices are learned afresh. Returns the devices taken in.
   */
  importDeviceState (snapshot: unknown, options: { reconnectAllowanceMs?: number } = {}): number {
    const result = this.#engine.importDevices(snapshot, options)
    if (result.ignored) this.#options.logger.warn({ reason: result.ignored }, 'detection: device state snapshot ignored; its devices are learned afresh')
    return result.devices
  }

  /** Forgets the devices `filter` picks (their partition went to another collector, which judges them now); returns how many. */
  forgetDevices (filter: (deviceId: string) => boolean): number {
    return this.#engine.forgetDevices(filter)
  }

  /**
   * The synced advisories (app/ reads `<data-dir>/advisories.db` when a
   * sync changed it): each device is judged against them at its next
   * message, and a firmware that has left every range clears its alert.
   */
  setAdvisories (index: AdvisoryIndex | undefined): void {
    this.#engine.setAdvisories(index)
  }

  /** The collector's broker session went down or came back. */
  setInputConnected (connected: boolean): void {
    this.pipeline.setConnected(connected)
  }

  /** The broker stopped answering the collector's probe, or answers again (collector/broker-probe.ts). */
  setBrokerAnswering (answering: boolean, waitedMs: number): void {
    this.pipeline.setAnswering(answering, waitedMs)
  }

  /**
   * One event of a network server's integration, as the collector reads it
   * (issue 16): the LoRaWAN policies' findings and clears into the alert
   * book. Its readings reach onTelemetry separately, as a telemetry point.
   */
  onLorawan (observation: LorawanObservation): void {
    const device = observation.device
    this.#apply(this.#engine.onLorawan(observation), { site: device?.site ?? null, kind: device?.kind ?? null })
  }

  onSecurityEvent (event: SecurityEvent): void {
    if (event.type === 'quarantined' || event.type === 'quarantine-lifted') this.#onQuarantineEvent(event)
    this.#apply(this.#engine.onSecurityEvent(event), event)
  }

  /** An operator acknowledges an alert; undefined if there is no open alert with that id. */
  acknowledge (id: string, by: string): MaybeAsync<Alert | undefined> {
    return this.#published(this.alerts.acknowledge(id, by))
  }

  /** An operator resolves an alert; undefined if there is no unresolved alert with that id. */
  resolve (id: string, by: string): MaybeAsync<Alert | undefined> {
    return this.#published(this.alerts.resolve(id, by))
  }

  /** An analyst's note on an alert; undefined if there is no such alert. */
  comment (id: string, by: string, text: string): MaybeAsync<Alert | undefined> {
    return this.#published(this.alerts.comment(id, by, text))
  }

  /** An alert about PlaceGuard itself (e.g. a SOC sink down), logged, stored and delivered like the others. */
  raiseSystemAlert (finding: Raisable): void {
    this.#background(after(this.alerts.raise(finding), (change) => this.#publish([change])), `system alert ${finding.policy}`)
  }

  clearSystemAlert (policy: AlertPolicy, deviceId: string, reason: string): void {
    this.#background(after(this.alerts.clear({ policy, deviceId, reason }), (change) => { if (change) this.#publish([change]) }), `clear of ${policy}`)
  }

  #published (change: MaybeAsync<AlertChange | undefined>): MaybeAsync<Alert | undefined> {
    return after(change, (c) => {
      if (c) this.#publish([c])
      return c?.alert
    })
  }

  /** An operator's quarantine (the API's and CLI's); resolves once the broker has acted. */
  async quarantine (deviceId: string, durationMs: number, reason: string, by: string): Promise<void> {
    await this.#send({ action: 'quarantine', deviceId, durationMs, reason, by })
  }

  /** An operator lifts a quarantine; the broker's `quarantine-lifted` event updates the alert. */
  async liftQuarantine (deviceId: string, by: string, reason?: string): Promise<void> {
    await this.#send({ action: 'lift', deviceId, by, ...(reason ? { reason } : {}) })
  }

  async #send (command: QuarantineCommand): Promise<void> {
    if (!this.#options.command) throw new Error('no broker connection for commands')
    await this.#options.command(command)
  }

  #onQuarantineEvent (event: SecurityEvent): void {
    const details = event.details ?? {}
    const until = typeof details.until === 'string' ? details.until : null
    if (event.deviceId) {
      if (event.type === 'quarantined' && until) this.#quarantined.set(event.deviceId, Date.parse(until))
      else this.#quarantined.delete(event.deviceId)
    }
    if (typeof details.alertId !== 'string') return
    const by = typeof details.by === 'string' ? details.by : null
    const change = event.type === 'quarantined'
      ? this.alerts.recordResponse(details.alertId, { action: 'quarantine', status: 'active', until, detail: null })
      : this.alerts.recordResponse(details.alertId, { action: 'quarantine', status: by === 'broker' ? 'ended' : 'lifted', until, detail: by === 'broker' ? event.reason : `lifted by ${by ?? 'unknown'}` })
    this.#background(after(change, (c) => { if (c) this.#publish([c]) }), `quarantine ${event.type} on ${details.alertId}`)
  }

  /** The policy's automated response, if it has one and the alert names a real device. */
  #respond (alert: Alert): void {
    const quarantine = this.#engine.policy(alert.policy)?.response?.quarantine
    // Some alerts are keyed by a source address or an unverified claim: nothing to quarantine.
    if (!quarantine || !alert.kind || !isValidId(alert.deviceId)) return
    const until = new Date(this.#clock.now() + quarantine.duration).toISOString()
    this.counters.quarantinesRequested++
    const requested = this.alerts.recordResponse(alert.id, { action: 'quarantine', status: 'requested', until, detail: null })
    this.#background(after(requested, (c) => { if (c) this.#publish([c]) }), `quarantine requested on ${alert.id}`)
    this.#send({
      action: 'quarantine', deviceId: alert.deviceId, durationMs: quarantine.duration, reason: `${alert.policy}: ${alert.summary}`.slice(0, 500),
      by: `policy:${alert.policy}`, alertId: alert.id, policy: alert.policy,
    }).catch((error: Error) => {
      this.counters.quarantineFailures++
      this.#options.logger.error({ alert: alert.id, deviceId: alert.deviceId, err: error.message }, 'automated quarantine not applied')
      const failed = this.alerts.recordResponse(alert.id, { action: 'quarantine', status: 'failed', until: null, detail: error.message })
      this.#background(after(failed, (c) => { if (c) this.#publish([c]) }), `quarantine failed on ${alert.id}`)
    })
  }

  /** cert-expiry over the whole inventory (also hourly, and at start). */
  /**
   * cert-expiry over the inventory: `entries` when the caller has just read
   * it (the service does, once a minute, for the fleet view too), or a fresh
   * read. Run each minute rather than each hour, so a certificate issued
   * close to its expiry is flagged within a minute of being issued.
   */
  checkCertificates (entries?: readonly InventoryEntry[]): void {
    if (!entries) {
      const pki = new FleetPki(this.#options.dataDir)
      try {
        if (!pki.initialized) return
        entries = pki.list()
      } finally {
        pki.close()
      }
    }
    // The inventory also says what each device is: firmware-vulnerable matches advisories on vendor and model.
    const products = new Map<string, DeviceProduct>()
    for (const e of entries) if (e.role === 'device' && e.vendor && e.model) products.set(e.deviceId, { vendor: e.vendor, model: e.model })
    this.#engine.setDeviceProducts(products)
    // A LoRaWAN device has no certificate to expire; its integration's certificate is not a device's either.
    const certificates = entries.filter((e): e is CertificateEntry => e.identity === 'certificate' && e.role === 'device' && e.effectiveStatus === 'active')
      .map((e) => ({ deviceId: e.deviceId, serial: e.serial, notAfter: e.notAfter, kind: e.kind, site: e.site }))
    this.#apply(this.#engine.onCertificates(certificates))
  }


  /**
   * A verdict's findings into the book. Over SQLite all of it happens now;
   * over an asynchronous store the writes are queued in the book in the
   * order verdicts arrive (so per (policy, device) an alert never overtakes
   * the one before it), and what follows them (storms, publishing,
   * responses) runs once they are stored.
   */
  #apply (verdict: Verdict, where: { site?: string | null, kind?: string | null } = {}): void {
    this.#background(this.#applied(verdict, where), 'findings of a verdict')
  }

  #applied (verdict: Verdict, where: { site?: string | null, kind?: string | null }): MaybeAsync<void> {
    for (const { finding, window } of verdict.quieted ?? []) this.#quieted(finding, `${window.type}: ${window.reason}`)
    const findings = verdict.findings.filter((finding) => {
      // A quarantined device is silent because PlaceGuard silenced it.
      if (finding.policy !== 'device-silent' || !((this.#quarantined.get(finding.deviceId) ?? 0) > this.#clock.now())) return true
      this.#quieted(finding, 'quarantined')
      return false
    })
    if (findings.length === 0 && verdict.clears.length === 0) return
    const written: Array<MaybeAsync<AlertChange | undefined>> = [
      ...findings.map((finding) => this.alerts.raise(finding, where)),
      ...verdict.clears.map((clear) => this.alerts.clear(clear)),
    ]
    return after(allOf(written), (all) => {
      const changes = all.filter((c) => c !== undefined)
      const opened = changes.filter((c) => c.change === 'opened').map((c) => c.alert)
      const { correlated, storms } = opened.length === 0 ? { correlated: new Map<string, Storm>(), storms: [] } : this.#storms.observe(opened, (kind, site) => this.#engine.groupSize(kind, site))
      return after(allOf(storms.map((storm) => this.#raiseStorm(storm))), (ids) => {
        const stormAlerts = new Map(storms.map((storm, i) => [storm, ids[i]!]))
        for (const [alertId, storm] of correlated) {
          if (this.#correlated.size >= MAX_CORRELATED) this.#correlated.delete(this.#correlated.keys().next().value!)
          this.#correlated.set(alertId, stormAlerts.get(storm)!)
        }
        this.#publish(changes)
        // A storm's automated responses still run: quarantine is per device, and the policy asked for it.
        for (const { change, alert } of changes) if (change === 'opened') this.#respond(alert)
      })
    })
  }

  /** One alert for the storm, opened once and updated as it grows; its id stands for the devices at the SOC. */
  #raiseStorm (storm: Storm): MaybeAsync<string> {
    const listed = storm.devices.slice(0, 50)
    const more = storm.deviceCount - listed.length
    const raised = this.alerts.raise({
      policy: 'alert-storm', deviceId: `storm:${storm.policy}:${storm.site}:${storm.kind}`,
      severity: this.#engine.policy(storm.policy)?.severity ?? 'medium',
      summary: `${storm.policy} on ${storm.deviceCount} of ${storm.groupSize} ${storm.kind} devices at ${storm.site} within ${formatDuration(this.#storms.windowMs)}: ${listed.join(', ')}${more > 0 ? ` and ${more} more` : ''} (per-device alerts in the API)`,
      evidence: { policy: storm.policy, site: storm.site, kind: storm.kind, deviceCount: storm.deviceCount, groupSize: storm.groupSize, devices: storm.devices.join(','), startedAt: new Date(storm.startedAtMs).toISOString() },
    }, { site: storm.site, kind: storm.kind })
    return after(raised, (change) => {
      this.#publish([change])
      return change.alert.id
    })
  }

  #quieted (finding: Finding, why: string): void {
    this.counters.quieted++
    this.#options.logger.debug({ finding: { policy: finding.policy, deviceId: finding.deviceId, summary: finding.summary }, why }, 'finding quieted')
  }

  /** Alert changes to the log and to the `alert` measurement. */
  #publish (changes: AlertChange[]): void {
    const stored: StoredPoint[] = []
    for (const alertChange of changes) {
      const { change, alert } = alertChange
      const stormAlertId = this.#correlated.get(alert.id)
      if (change === 'updated') {
        // Repeats fold into the alert; they are not news.
        this.#options.onAlertRepeated?.(alert, stormAlertId ? { stormAlertId } : undefined)
        continue
      }
      try {
        this.#options.onAlertChange?.(alertChange, stormAlertId ? { stormAlertId } : undefined)
      } catch (error) {
        // The alert is safe in the alert book; say loudly that its delivery was not queued.
        this.#options.logger.error({ alert: alert.id, err: (error as Error).message }, 'alert change not queued for delivery')
      }
      const response = change === 'response' ? { response: alert.response } : {}
      // Under a storm one line per device would flood the log too: the storm alert is the warning.
      this.#options.logger[stormAlertId ? 'debug' : change === 'opened' ? 'warn' : 'info']({ alert: { id: alert.id, policy: alert.policy, severity: alert.severity, deviceId: alert.deviceId, summary: alert.summary, ...response } }, `alert ${change}: ${alert.policy}`)
      stored.push({
        measurement: ALERT_MEASUREMENT,
        tags: { policy: alert.policy, device: alert.deviceId, severity: alert.severity, status: alert.status },
        fields: { id: alert.id, summary: alert.summary, change, count: 1 },
        timestampMs: this.#clock.now(),
      })
    }
    if (stored.length === 0) return
    try {
      this.#options.store(stored)
    } catch (error) {
      // The alert itself is safe in the alert book; only its copy in the store waits.
      this.#options.logger.error({ err: (error as Error).message }, 'alert changes not stored in the time-series store')
    }
  }
}
