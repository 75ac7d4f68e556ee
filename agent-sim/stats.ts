/** Counters, publish-to-PUBACK latencies and reconnection times of a run, and the summary `--json` prints. */
export class SimStats {
  connected = 0
  reconnects = 0
  /** Established connections that were lost (each is followed by a reconnect, or still down at the end). */
  drops = 0
  connectErrors = 0
  /** Completed TLS handshakes, full or resumed from a session ticket. */
  tlsFull = 0
  tlsResumed = 0
  sent = 0
  acked = 0
  failed = 0
  /** Reconnects by the broker URL they landed on. */
  readonly reconnectsByUrl = new Map<string, number>()
  readonly #inFlight = new Map<string, number>()
  readonly #latencies: Reservoir
  /** Per drop: ms from losing the connection to the next CONNACK. */
  readonly #timesToReconnect: Reservoir

  constructor (reservoirSize = 200_000) {
    this.#latencies = new Reservoir(reservoirSize)
    this.#timesToReconnect = new Reservoir(reservoirSize)
  }

  published (deviceId: string): void {
    this.sent++
    this.#inFlight.set(deviceId, (this.#inFlight.get(deviceId) ?? 0) + 1)
  }

  /** A publish was acknowledged (with its latency) or failed (latency undefined). */
  settled (deviceId: string, latencyMs: number | undefined): void {
    this.#inFlight.set(deviceId, Math.max(0, (this.#inFlight.get(deviceId) ?? 1) - 1))
    if (latencyMs === undefined) {
      this.failed++
      return
    }
    this.acked++
    this.#latencies.add(latencyMs)
  }

  handshake (resumed: boolean): void {
    if (resumed) this.tlsResumed++
    else this.tlsFull++
  }

  dropped (): void {
    this.drops++
  }

  /** Connected again after a drop, to `url`, `afterMs` after the connection was lost. */
  reconnected (url: string, afterMs: number): void {
    this.reconnects++
    this.reconnectsByUrl.set(url, (this.reconnectsByUrl.get(url) ?? 0) + 1)
    this.#timesToReconnect.add(afterMs)
  }

  inFlightOf (deviceId: string): number {
    return this.#inFlight.get(deviceId) ?? 0
  }

  /** Publishes never acknowledged by the end of the run count as failed. */
  closeOutstanding (): void {
    for (const [deviceId, count] of this.#inFlight) {
      this.failed += count
      this.#inFlight.set(deviceId, 0)
    }
  }

  /** Publish-to-PUBACK latency percentile, ms. */
  percentile (p: number): number | null {
    return this.#latencies.percentile(p)
  }

  /** Time-to-reconnect percentile over the drops that were followed by a reconnect, ms; 100 is the longest. */
  reconnectPercentile (p: number): number | null {
    return this.#timesToReconnect.percentile(p)
  }
}

/** A bounded uniform sample (Vitter's algorithm R): percentiles stay honest at any run length. */
class Reservoir {
  readonly #values: number[] = []
  readonly #size: number
  #seen = 0
  /** Kept apart: a sample may have dropped the largest value. */
  #max = -Infinity

  constructor (size: number) {
    this.#size = size
  }

  add (value: number): void {
    this.#seen++
    this.#max = Math.max(this.#max, value)
    if (this.#values.length < this.#size) this.#values.push(value)
    else {
      const slot = Math.floor(Math.random() * this.#seen)
      if (slot < this.#size) this.#values[slot] = value
    }
  }

  percentile (p: number): number | null {
    if (this.#values.length === 0) return null
    if (p >= 100) return Math.round(this.#max * 10) / 10
    const sorted = [...this.#values].sort((a, b) => a - b)
    return Math.round(sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]! * 10) / 10
  }
}
