/**
 * A seeded PRNG (mulberry32), so that `--seed` makes a fleet, its
 * telemetry and its incidents repeat exactly. Not for cryptography.
 */
export class Random {
  #state: number

  constructor (seed: number) {
    this.#state = seed >>> 0
  }

  /** Uniform in [0, 1). */
  next (): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0)
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }

  between (min: number, max: number): number {
    return min + (max - min) * this.next()
  }

  /** Normal(0, 1) by Box–Muller. */
  gaussian (): number {
    return Math.sqrt(-2 * Math.log(1 - this.next())) * Math.cos(2 * Math.PI * this.next())
  }

  pick<T> (items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!
  }

  /** Picks by weight: [[value, weight], …]. */
  weighted<T> (entries: ReadonlyArray<readonly [T, number]>): T {
    const total = entries.reduce((sum, [, weight]) => sum + weight, 0)
    let roll = this.next() * total
    for (const [value, weight] of entries) {
      roll -= weight
      if (roll < 0) return value
    }
    return entries.at(-1)![0]
  }

  /** A child generator for one device, independent of how many draws others made. */
  fork (salt: string): Random {
    let hash = this.#state ^ 0x9e3779b9
    for (let i = 0; i < salt.length; i++) hash = Math.imul(hash ^ salt.charCodeAt(i), 0x01000193)
    return new Random(hash >>> 0)
  }
}
