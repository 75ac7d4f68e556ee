/**
 * The broker's quarantine gate: the automated response (and an operator's)
 * that keeps a valid device out for a while. It holds the list in force,
 * ends quarantines when their time runs out, acts on the collector's
 * control commands, and tells the CONNECT hook whom to refuse.
 */
import type { Clock } from '../shared/clock.ts'
import type { Logger } from '../shared/logger.ts'
import { withoutUndefined } from '../shared/objects.ts'
import type { SecurityEvent, SecurityEventType } from '../shared/security-events.ts'
import { parseQuarantineCommand, type QuarantineCommand, type QuarantineEntry, QuarantineList } from './quarantine.ts'

export type QuarantineRequest = Omit<Extract<QuarantineCommand, { action: 'quarantine' }>, 'action'>

export interface QuarantineGateOptions {
  /** Where quarantines are kept across restarts; in memory without it. */
  file: string | undefined
  clock: Clock
  logger: Logger
  emit: (type: SecurityEventType, fields: Omit<SecurityEvent, 'type' | 'at'>) => void
  /** Drops the device's live sessions; answers how many there were. */
  dropSessions: (deviceId: string) => number
  /** Told of each command from the control topic once acted on (a cluster passes it to the other nodes). */
  onCommand?: ((command: QuarantineCommand) => void) | undefined
}

/** A device that keeps retrying while quarantined is reported this often, not at every attempt. */
const REFUSAL_EVENT_EVERY_MS = 60_000
const SWEEP_MS = 1_000

export class QuarantineGate {
  readonly #options: QuarantineGateOptions
  readonly #list: QuarantineList
  /** When a quarantined device's refusal was last reported, per device (bounded by the list). */
  readonly #refusedAt = new Map<string, number>()
  #sweep: NodeJS.Timeout | undefined

  constructor (options: QuarantineGateOptions) {
    this.#options = options
    // Saved at each change only (quarantine, lift, expiry): rare enough to say each failure.
    this.#list = new QuarantineList(options.file, (error) => {
      options.logger.error({ file: options.file, err: error.message }, 'quarantine list not saved: the quarantines are in force, but a restart now would forget the changes since the last save')
    })
  }

  start (): void {
    this.#sweep = setInterval(() => this.#expire(), SWEEP_MS)
    this.#sweep.unref()
  }

  stop (): void {
    clearInterval(this.#sweep)
  }

  /**
   * Refuses a device for `durationMs`: its live session is dropped now and
   * its CONNECTs are refused until then. Emits `quarantined`.
   */
  quarantine (request: QuarantineRequest): QuarantineEntry {
    const now = this.#options.clock.now()
    const entry = this.#list.add({
      deviceId: request.deviceId, since: new Date(now).toISOString(), until: new Date(now + request.durationMs).toISOString(),
      reason: request.reason, by: request.by, alertId: request.alertId, policy: request.policy,
    })
    const dropped = this.#options.dropSessions(entry.deviceId)
    this.#options.emit('quarantined', {
      deviceId: entry.deviceId, reason: `quarantined until ${entry.until}: ${entry.reason}`,
      details: withoutUndefined({ until: entry.until, by: entry.by, alertId: entry.alertId, policy: entry.policy, sessionsDropped: dropped }),
    })
    return entry
  }

  /** Ends a quarantine before its time. Emits `quarantine-lifted`; undefined if the device was not quarantined. */
  lift (deviceId: string, by: string, reason = 'lifted by an operator'): QuarantineEntry | undefined {
    const entry = this.#list.remove(deviceId)
    if (entry) this.#emitLifted(entry, by, reason)
    return entry
  }

  /** Quarantines in force. */
  inForce (): QuarantineEntry[] {
    return this.#list.inForce(this.#options.clock.now())
  }

  /** Whether the device is quarantined now. */
  holds (deviceId: string): boolean {
    return this.#list.get(deviceId, this.#options.clock.now()) !== undefined
  }

  /**
   * Why a CONNECT from this device is refused, if it is; `report` is false
   * for a retry within a minute of the last reported one.
   */
  refusal (deviceId: string): { reason: string, report: boolean } | undefined {
    const now = this.#options.clock.now()
    const entry = this.#list.get(deviceId, now)
    if (!entry) return undefined
    const report = now - (this.#refusedAt.get(deviceId) ?? 0) >= REFUSAL_EVENT_EVERY_MS
    if (report) this.#refusedAt.set(deviceId, now)
    return { reason: `device quarantined until ${entry.until}: ${entry.reason}`, report }
  }

  /** A command from the collector role on the control topic (it may run in another process). */
  onControl (from: string, payload: Buffer): void {
    const parsed = parseQuarantineCommand(payload)
    if ('error' in parsed) {
      this.#options.logger.error({ from, err: parsed.error }, 'quarantine command refused')
      return
    }
    this.apply(parsed.command)
    this.#options.onCommand?.(parsed.command)
  }

  /** Acts on a command, from the control topic or passed on by another node. */
  apply (command: QuarantineCommand): void {
    if (command.action === 'quarantine') this.quarantine(command)
    else if (!this.lift(command.deviceId, command.by, command.reason)) {
      this.#options.logger.info({ deviceId: command.deviceId, by: command.by }, 'quarantine lift: the device was not quarantined')
    }
  }

  #expire (): void {
    for (const entry of this.#list.expire(this.#options.clock.now())) this.#emitLifted(entry, 'broker', 'quarantine period ended')
  }

  #emitLifted (entry: QuarantineEntry, by: string, reason: string): void {
    this.#refusedAt.delete(entry.deviceId)
    this.#options.emit('quarantine-lifted', {
      deviceId: entry.deviceId, reason,
      details: withoutUndefined({ by, since: entry.since, until: entry.until, alertId: entry.alertId, policy: entry.policy }),
    })
  }
}
