/**
 * Keeps a lone collector's detection state in its DetectionStateFile:
 * restored at start, before the input is read; the devices that changed
 * saved every `saveEveryMs` and at stop. A kill loses that many seconds of
 * learning at most.
 *
 * Restored devices' silence counts from the restart, plus an allowance:
 * PlaceGuard may have been down with its broker (`placeguard up`), and the
 * devices' clients then retry with a back-off that grows with the time they
 * were cut off. The allowance is the one a lost broker gets
 * (pipeline-health.ts reconnectAllowanceFor), for the time since the
 * state was last saved.
 */
import type { Clock } from '../shared/clock.ts'
import { formatDuration } from '../shared/duration.ts'
import type { Logger } from '../shared/logger.ts'
import type { Detection } from './detection.ts'
import { reconnectAllowanceFor } from './pipeline-health.ts'
import { DetectionStateFile } from './state-file.ts'

export interface DetectionStateKeeperOptions {
  detection: Detection
  /** The DetectionStateFile, opened at restore(). */
  path: string
  clock: Clock
  logger: Logger
  saveEveryMs?: number
}

export class DetectionStateKeeper {
  readonly #options: Required<DetectionStateKeeperOptions>
  #timer: NodeJS.Timeout | undefined
  #file: DetectionStateFile | undefined

  constructor (options: DetectionStateKeeperOptions) {
    this.#options = { saveEveryMs: 5_000, ...options }
  }

  /** Takes in what was saved; call before the input is read. Returns the devices restored. */
  restore (): number {
    const { detection, clock, logger } = this.#options
    let saved
    try {
      this.#file ??= new DetectionStateFile(this.#options.path)
      saved = this.#file.load()
    } catch (error) {
      // A damaged file costs what it held, not the collector: detection learns the fleet afresh and keeps nothing.
      logger.error({ err: (error as Error).message, path: this.#options.path }, 'detection: its saved state cannot be read; the devices are learned afresh, and nothing is saved until the file is fixed or removed')
      this.#file?.close()
      this.#file = undefined
      return 0
    }
    for (const reason of saved.unreadable) logger.warn({ reason }, 'detection: a saved state row is unreadable; its devices are learned afresh')
    if (saved.snapshot === undefined || saved.savedAtMs === undefined) return 0
    const downMs = Math.max(0, clock.now() - saved.savedAtMs)
    const reconnectAllowanceMs = reconnectAllowanceFor(downMs)
    const devices = detection.importDeviceState(saved.snapshot, { reconnectAllowanceMs })
    logger.info({ devices, savedAgoMs: downMs, reconnectAllowanceMs },
      `detection: restored what it learned of ${devices} devices (saved ${formatDuration(downMs)} ago); their silence counts after ${formatDuration(reconnectAllowanceMs)} more`)
    return devices
  }

  start (): void {
    this.#options.detection.trackDeviceChanges()
    this.#timer = setInterval(() => this.#save(), this.#options.saveEveryMs)
    this.#timer.unref()
  }

  /** What changed since the last save, once more, then closes the file. */
  stop (): void {
    clearInterval(this.#timer)
    this.#timer = undefined
    if (!this.#file) return
    this.#save()
    this.#file.close()
    this.#file = undefined
  }

  #save (): void {
    const changed = this.#options.detection.exportDeviceState(() => true, { changedOnly: true })
    if (changed.devices.length + changed.windows.length + (changed.lorawan?.length ?? 0) === 0) return
    this.#write((file) => file.save(changed))
  }

  /** A disk full or an I/O error costs what would have been saved, not the collector. */
  #write (write: (file: DetectionStateFile) => void): void {
    if (!this.#file) return
    try {
      write(this.#file)
    } catch (error) {
      this.#options.logger.error({ err: (error as Error).message }, 'detection: what it learned could not be saved; a restart would learn these devices afresh')
    }
  }
}
