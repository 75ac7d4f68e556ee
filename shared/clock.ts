/** Time, injectable so rules and expiry checks are tested without waiting. */
export interface Clock {
  now: () => number
}

export const systemClock: Clock = { now: () => Date.now() }
