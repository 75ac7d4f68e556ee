/**
 * Detection, wired: the collector's telemetry and security events go
 * through the policy engine, findings become alerts in the alert book
 * (`<data-dir>/alerts.db`), and alert changes are logged and stored in the
 * `alert` measurement. Policy files are reloaded when they change; a
 * broken file is reported and the policies in force stay in force.
 */
import { watch, type FSWatcher } from 'node:fs'
import { join } from 'node:path'
import type { SecurityEvent } from '../broker/index.ts'
import { FleetPki } from '../pki/index.ts'
import { AlertBook, type AlertChange, loadPolicyDirectory, PolicyEngine, type TelemetryObservation, type Verdict } from '../policies/index.ts'
import type { Logger } from '../shared/logger.ts'
import type { StoredPoint } from './stored-point.ts'

export const ALERT_MEASUREMENT = 'alert'
export const SHIPPED_POLICIES_DIR = join(import.meta.dirname, '..', 'policies')

export interface DetectionOptions {
  dataDir: string
  policiesDir?: string
  logger: Logger
  /** Where alert changes are stored (the spool). */
  store: (points: StoredPoint[]) => void
  tickMs?: number
  certificateCheckMs?: number
}

export class Detection {
  readonly alerts: AlertBook
  readonly engine: PolicyEngine
  readonly #options: DetectionOptions
  readonly #policiesDir: string
  #timers: NodeJS.Timeout[] = []
  #watcher: FSWatcher | undefined

  constructor (options: DetectionOptions) {
    this.#options = options
    this.#policiesDir = options.policiesDir ?? SHIPPED_POLICIES_DIR
    this.engine = new PolicyEngine(loadPolicyDirectory(this.#policiesDir).map((l) => l.policy))
    this.alerts = new AlertBook({ path: join(options.dataDir, 'alerts.db') })
  }

  start (): void {
    this.#timers.push(setInterval(() => this.#apply(this.engine.tick()), this.#options.tickMs ?? 5_000))
    this.checkCertificates()
    this.#timers.push(setInterval(() => this.checkCertificates(), this.#options.certificateCheckMs ?? 3_600_000))
    for (const timer of this.#timers) timer.unref()
    let pending: NodeJS.Timeout | undefined
    this.#watcher = watch(this.#policiesDir, () => {
      clearTimeout(pending)
      pending = setTimeout(() => this.reloadPolicies(), 200) // editors write in several steps
    })
  }

  stop (): void {
    for (const timer of this.#timers) clearInterval(timer)
    this.#watcher?.close()
    this.alerts.close()
  }

  reloadPolicies (): boolean {
    try {
      const loaded = loadPolicyDirectory(this.#policiesDir)
      this.engine.setPolicies(loaded.map((l) => l.policy))
      this.#options.logger.info({ policies: loaded.length }, 'policies reloaded')
      this.checkCertificates() // thresholds may have changed
      return true
    } catch (error) {
      this.#options.logger.error({ err: (error as Error).message }, 'policy files not reloaded; the policies in force stay in force')
      return false
    }
  }

  onTelemetry (point: StoredPoint, receivedAtMs = Date.now()): void {
    const { seq, fw, ...readings } = point.fields
    const observation: TelemetryObservation = {
      deviceId: point.tags.device!, site: point.tags.site!, kind: point.measurement as TelemetryObservation['kind'],
      ts: point.timestampMs, seq: seq as number, fw: fw as string, readings: readings as Record<string, number>, receivedAtMs,
    }
    this.#apply(this.engine.onTelemetry(observation), observation)
  }

  onSecurityEvent (event: SecurityEvent): void {
    this.#apply(this.engine.onSecurityEvent(event), event)
  }

  /** cert-expiry over the whole inventory (also hourly, and at start). */
  checkCertificates (): void {
    const pki = new FleetPki(this.#options.dataDir)
    try {
      if (!pki.initialized) return
      const certificates = pki.list().filter((e) => e.role === 'device' && e.effectiveStatus === 'active')
        .map((e) => ({ deviceId: e.deviceId, serial: e.serial, notAfter: e.notAfter, kind: e.kind, site: e.site }))
      this.#apply(this.engine.onCertificates(certificates))
    } finally {
      pki.close()
    }
  }

  #apply (verdict: Verdict, where: { site?: string | null, kind?: string | null } = {}): void {
    const changes: AlertChange[] = [
      ...verdict.findings.map((finding) => this.alerts.raise(finding, where)),
      ...verdict.clears.flatMap((clear) => this.alerts.clear(clear) ?? []),
    ]
    const stored: StoredPoint[] = []
    for (const { change, alert } of changes) {
      if (change === 'updated') continue // repeats fold into the alert; they are not news
      this.#options.logger[change === 'opened' ? 'warn' : 'info']({ alert: { id: alert.id, policy: alert.policy, severity: alert.severity, deviceId: alert.deviceId, summary: alert.summary } }, `alert ${change}: ${alert.policy}`)
      stored.push({
        measurement: ALERT_MEASUREMENT,
        tags: { policy: alert.policy, device: alert.deviceId, severity: alert.severity, status: alert.status },
        fields: { id: alert.id, summary: alert.summary, change, count: 1 },
        timestampMs: Date.now(),
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
