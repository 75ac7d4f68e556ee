/**
 * The HTTP API's source, in memory: the real Detection (shipped policies,
 * its alert book in a temporary directory), FleetState and Outbox (no
 * sinks) on `:memory:` SQLite, fed the way the collector service feeds
 * them, and a stand-in for the broker that answers quarantine commands
 * with the events the real one emits. No broker, no TLS, no simulator:
 * the routes run through fastify's inject() in milliseconds.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { apiSourceOf } from '../../app/index.ts'
import { SqliteAuditStore } from '../../audit/index.ts'
import type { ApiSource } from '../../dashboards/index.ts'
import { Outbox } from '../../delivery/index.ts'
import { Detection } from '../../detection/index.ts'
import { FleetState } from '../../fleet/index.ts'
import type { InventoryEntry } from '../../pki/index.ts'
import type { AlertChange } from '../../shared/alert-contract.ts'
import type { QuarantineCommand } from '../../shared/control.ts'
import type { DeviceKind } from '../../shared/ids.ts'
import type { LorawanObservation } from '../../shared/lorawan.ts'
import { createLogger } from '../../shared/logger.ts'
import type { SecurityEvent } from '../../shared/security-events.ts'
import type { StoredPoint } from '../../shared/stored-point.ts'

const DAY_MS = 86_400_000

export interface TestDevice {
  id: string
  kind: DeviceKind
  site: string
  /** Firmware it reports (default: one above every kind's minimum and outside the shipped denylist). */
  fw?: string
  /** Telemetry messages it has sent, `intervalMs` apart and ending now; 0: in the inventory, never seen (default 6). */
  samples?: number
}

export interface TestApiSourceOptions {
  tokens: ApiSource['tokens']
  /** Issued a year's certificate each, then heard from as their `samples` say. */
  devices?: TestDevice[]
  /** Fed after the telemetry, as the collector would (acl-denied, payload-invalid…). */
  events?: Array<Omit<SecurityEvent, 'at'>>
  intervalMs?: number
}

export interface TestApiSource {
  source: ApiSource
  detection: Detection
  fleet: FleetState
  /** The operator audit trail the API records in: `audit.db` in `dataDir`. */
  auditTrail: SqliteAuditStore
  /** The source's temporary directory (the alert book, the audit trail). */
  dataDir: string
  /** Every command the API (or a test) sent towards the broker, in order. */
  commands: QuarantineCommand[]
  /** The collector's figures that /metrics reads; `telemetry()` counts what it feeds. */
  figures: Record<string, number | undefined>
  /** What /readyz reports; with `broker` false, commands fail as with the collector's session down. */
  readiness: { broker: boolean, store: boolean }
  /** The PKI inventory, into the fleet view and cert-expiry (the service's minute timer). */
  inventory: (entries: InventoryEntry[]) => void
  /** A telemetry point the collector committed: into the fleet view and detection. */
  telemetry: (point: StoredPoint, receivedAtMs?: number) => void
  /** A security event from the broker (or the collector): into the fleet view and detection. */
  event: (event: Omit<SecurityEvent, 'at'>) => void
  /** A network server's event the collector decoded: into the fleet view and detection. */
  lorawan: (observation: LorawanObservation) => void
  close: () => Promise<void>
}

const DEFAULT_FIRMWARE: Record<DeviceKind, string> = { flood: '3.2.1', energy: '5.3.0', housing: '1.8.0' }

/** Steady, plausible readings of a kind: nothing a telemetry rule would flag. */
function readings (kind: DeviceKind, n: number): Record<string, number> {
  if (kind === 'flood') return { level_cm: 80 + (n % 3), battery_v: 3.6 }
  if (kind === 'energy') return { power_kw: 2, voltage_v: 231, energy_kwh: 1000 + n / 100 }
  return { temp_c: 20, humidity_pct: 45, co2_ppm: 600 }
}

export function telemetryPoint (device: Pick<TestDevice, 'id' | 'kind' | 'site' | 'fw'>, seq: number, timestampMs: number): StoredPoint {
  return {
    measurement: device.kind, tags: { site: device.site, device: device.id },
    fields: { ...readings(device.kind, seq), seq, fw: device.fw ?? DEFAULT_FIRMWARE[device.kind] }, timestampMs,
  }
}

export function deviceCertificate (device: Pick<TestDevice, 'id' | 'kind' | 'site'>, serial: number, nowMs = Date.now()): InventoryEntry {
  return {
    serial: serial.toString(16).padStart(16, '0'), deviceId: device.id, role: 'device', kind: device.kind, site: device.site,
    notBefore: new Date(nowMs - DAY_MS).toISOString(), notAfter: new Date(nowMs + 365 * DAY_MS).toISOString(), keyAlgorithm: 'ecdsa-p256',
    status: 'active', effectiveStatus: 'active', issuedAt: new Date(nowMs - DAY_MS).toISOString(), revokedAt: null,
    fingerprint: null, spkiSha256: null, certificatePath: null, network: null, identity: 'certificate',
  }
}

/** An API source over a fleet of `devices` that have reported, and the `events` that followed. */
export function apiSourceForTest (options: TestApiSourceOptions): TestApiSource {
  const dataDir = mkdtempSync(join(tmpdir(), 'placeguard-api-'))
  const logger = createLogger({ level: 'silent' })
  const fleet = new FleetState({ path: ':memory:' })
  const outbox = new Outbox({ path: ':memory:', sinks: [], deadLetterAfterMs: 3_600_000, logger })
  const listeners = new Set<(change: AlertChange) => void>()
  const commands: QuarantineCommand[] = []
  const figures: Record<string, number | undefined> = { received: 0, telemetryStored: 0, eventsStored: 0 }
  const readiness = { broker: true, store: true }
  const auditTrail = new SqliteAuditStore({ path: join(dataDir, 'audit.db') })
  const detection: Detection = new Detection({
    dataDir, logger, store: () => {}, certificateCheckMs: 0,
    command: async (command) => {
      commands.push(command)
      if (!readiness.broker) throw new Error('not connected to the broker')
      // What the broker's quarantine gate emits once it has acted.
      if (command.action === 'quarantine') {
        const until = new Date(Date.now() + command.durationMs).toISOString()
        event({ type: 'quarantined', deviceId: command.deviceId, reason: `quarantined until ${until}: ${command.reason}`, details: { until, by: command.by, ...(command.alertId ? { alertId: command.alertId } : {}) } })
      } else {
        event({ type: 'quarantine-lifted', deviceId: command.deviceId, reason: command.reason ?? 'lifted by an operator', details: { by: command.by } })
      }
    },
    // As the collector service wires it: the fleet view's open alerts, the live stream, the SOC outbox.
    onAlertChange: (change, correlated) => {
      fleet.onAlertChange(change)
      for (const listener of listeners) listener(change)
      if (!correlated) outbox.enqueue(change)
    },
  })
  const inventory = (entries: InventoryEntry[]): void => {
    fleet.setInventory(entries)
    detection.checkCertificates(entries)
  }
  const telemetry = (point: StoredPoint, receivedAtMs = point.timestampMs): void => {
    figures.received!++
    figures.telemetryStored!++
    fleet.onTelemetry(point, receivedAtMs)
    detection.onTelemetry(point, receivedAtMs)
  }
  const lorawan = (observation: LorawanObservation): void => {
    figures.lorawanEvents = (figures.lorawanEvents ?? 0) + 1
    fleet.onLorawan(observation)
    detection.onLorawan(observation)
  }
  function event (partial: Omit<SecurityEvent, 'at'>): void {
    const full: SecurityEvent = { at: new Date().toISOString(), ...partial }
    figures.received!++
    figures.eventsStored!++
    fleet.onSecurityEvent(full)
    detection.onSecurityEvent(full)
  }

  const devices = options.devices ?? []
  const now = Date.now()
  inventory(devices.map((device, i) => deviceCertificate(device, i + 1, now)))
  const intervalMs = options.intervalMs ?? 300
  for (const device of devices) {
    const samples = device.samples ?? 6
    for (let seq = 0; seq < samples; seq++) telemetry(telemetryPoint(device, seq, now - (samples - seq) * intervalMs))
  }
  for (const e of options.events ?? []) event(e)

  const source = apiSourceOf({
    detection, fleet, outbox,
    pipeline: () => ({ ...figures }),
    ready: () => ({ ...readiness }),
    onAlertChange: (listener) => {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },
    auditTrail,
  }, options.tokens)
  return {
    source, detection, fleet, auditTrail, dataDir, commands, figures, readiness, inventory, telemetry, event, lorawan,
    close: async () => {
      await detection.stop()
      await fleet.close()
      await outbox.stop()
      try {
        auditTrail.close()
      } catch {
        // closed by the test already (a trail that cannot record)
      }
      rmSync(dataDir, { recursive: true, force: true })
    },
  }
}
