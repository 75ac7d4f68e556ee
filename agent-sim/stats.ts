/** Counters and publish-to-PUBACK latencies of a run, and the summary `--json` prints. */
export class SimStats {
  connected = 0
  reconnects = 0
  connectErrors = 0
  sent = 0
  acked = 0
  failed = 0
  readonly #inFlight = new Map<string, number>()
  // A bounded reservoir (Vitter's algorithm R) keeps percentiles honest at any run length.
  readonly #latencies: number[] = []
  readonly #reservoirSize: number
  #seen = 0

  constructor (reservoirSize = 200_000) {
    this.#reservoirSize = reservoirSize
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
    this.#seen++
    if (this.#latencies.length < this.#reservoirSize) this.#latencies.push(latencyMs)
    else {
      const slot = Math.floor(Math.random() * this.#seen)
      if (slot < this.#reservoirSize) this.#latencies[slot] = latencyMs
    }
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

  percentile (p: number): number | null {
    if (this.#latencies.length === 0) return null
    const sorted = [...this.#latencies].sort((a, b) => a - b)
    return Math.round(sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]! * 10) / 10
  }
}
