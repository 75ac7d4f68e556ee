/**
 * Quarantine: devices the broker refuses for a while — an automated
 * response to an alert (policies' `response.quarantine`) or an operator's
 * decision. A quarantined device's live session is dropped and its CONNECTs
 * are refused (CONNACK 5, not authorized) until the quarantine ends or is
 * lifted. Kept in a file so that a broker restart does not free a device.
 *
 * Commands arrive from the collector role on QUARANTINE_CONTROL_TOPIC
 * (the collector may run in another process), validated here.
 */
import { readTextIfExists, writeFileAtomic } from '../shared/files.ts'
import { MAX_QUARANTINE_MS, parseQuarantineCommand, type QuarantineCommand, quarantineCommandSchema } from '../shared/control.ts'

export { MAX_QUARANTINE_MS, parseQuarantineCommand, type QuarantineCommand, quarantineCommandSchema }

/** Where the broker keeps its quarantines, in the data directory. */
export const QUARANTINE_FILE = 'quarantine.json'

export interface QuarantineEntry {
  deviceId: string
  /** ISO 8601: from when, and until when the device is refused. */
  since: string
  until: string
  /** Why, for the operator and the device's security events. */
  reason: string
  /** The alert that asked for it, when it was automatic. */
  alertId?: string
  policy?: string
  /** Who asked: `policy:<id>` or an operator's name. */
  by: string
}


/**
 * The quarantine list, persisted to `path` (JSON, written atomically) when
 * one is given. A write that fails (a full disk) is told to `onSaveError`
 * and changes nothing in force: a quarantine applies whether or not it
 * could be saved, and is saved with the next change that can be.
 */
export class QuarantineList {
  readonly #path: string | undefined
  readonly #entries = new Map<string, QuarantineEntry>()
  readonly #onSaveError: (error: Error) => void

  constructor (path?: string, onSaveError: (error: Error) => void = () => {}) {
    this.#path = path
    this.#onSaveError = onSaveError
    if (!path) return
    const raw = readTextIfExists(path)
    if (raw === undefined) return
    for (const entry of JSON.parse(raw) as QuarantineEntry[]) this.#entries.set(entry.deviceId, entry)
  }

  /** The device's quarantine if it is in force at `nowMs`. */
  get (deviceId: string, nowMs: number): QuarantineEntry | undefined {
    const entry = this.#entries.get(deviceId)
    return entry && Date.parse(entry.until) > nowMs ? entry : undefined
  }

  list (): QuarantineEntry[] {
    return [...this.#entries.values()]
  }

  /** The quarantines still in force at `nowMs`. */
  inForce (nowMs: number): QuarantineEntry[] {
    return this.list().filter((entry) => Date.parse(entry.until) > nowMs)
  }

  /** Adds or extends (a later `until` wins; an earlier one never shortens a quarantine in force). */
  add (entry: QuarantineEntry): QuarantineEntry {
    const existing = this.#entries.get(entry.deviceId)
    const kept = existing && Date.parse(existing.until) > Date.parse(entry.until) ? { ...entry, until: existing.until } : entry
    this.#entries.set(entry.deviceId, kept)
    this.#save()
    return kept
  }

  remove (deviceId: string): QuarantineEntry | undefined {
    const entry = this.#entries.get(deviceId)
    if (!entry) return undefined
    this.#entries.delete(deviceId)
    this.#save()
    return entry
  }

  /** Removes and returns the quarantines that have ended by `nowMs`. */
  expire (nowMs: number): QuarantineEntry[] {
    const ended = [...this.#entries.values()].filter((entry) => Date.parse(entry.until) <= nowMs)
    if (ended.length === 0) return []
    for (const entry of ended) this.#entries.delete(entry.deviceId)
    this.#save()
    return ended
  }

  #save (): void {
    if (!this.#path) return
    try {
      writeFileAtomic(this.#path, `${JSON.stringify(this.list(), null, 2)}\n`, 0o600)
    } catch (error) {
      this.#onSaveError(error as Error)
    }
  }
}
