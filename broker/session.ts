/**
 * What the broker knows of a connection once its certificate is accepted:
 * the identity and facts read at the handshake, and the per-session state
 * the MQTT hooks keep (rate, refused subscriptions).
 */
import type { Clock } from '../shared/clock.ts'
import type { Identity } from '../pki/index.ts'
import type { BrokerLimits } from './config.ts'
import { PublishThrottle } from './publish-throttle.ts'

export interface Session {
  identity: Identity
  serial: string
  /** The client certificate's notAfter, ms since the epoch (its will is withheld once it has passed). */
  notAfter: number
  remoteAddress: string
  connectedAt: number
  throttle: PublishThrottle | undefined
  rateLimitedAt: number
  /** Refused subscriptions in this session: how many, how many not yet reported, when last reported. */
  subscribeDenials: { count: number, unreported: number, reportedAt: number }
}

/** The broker's notion of a connection's trusted facts, read by other rooms through `sessionOf`. */
export interface SessionInfo {
  identity: Identity
  serial: string
  remoteAddress: string
  connectedAt: number
}

export type SessionLimits = Pick<BrokerLimits, 'publishRatePerSec' | 'publishBurst' | 'integrationPublishRatePerSec' | 'integrationPublishBurst' | 'maxThrottleMs'>

/** The publish budget of an identity: a device's, an integration's (a fleet's), or none (the collector). */
export function publishBudget (identity: Identity, limits: SessionLimits): { ratePerSec: number, burst: number } | undefined {
  if (identity.role === 'device') return { ratePerSec: limits.publishRatePerSec, burst: limits.publishBurst }
  // A supplier sends a few commands in a maintenance window: a device's budget is plenty.
  if (identity.role === 'supplier') return { ratePerSec: limits.publishRatePerSec, burst: limits.publishBurst }
  if (identity.role === 'integration') return { ratePerSec: limits.integrationPublishRatePerSec, burst: limits.integrationPublishBurst }
  return undefined
}

/** A fresh session; devices and integrations are throttled (when a rate is set), the collector is not. */
export function newSession (facts: Pick<Session, 'identity' | 'serial' | 'notAfter' | 'remoteAddress' | 'connectedAt'>, limits: SessionLimits, clock: Clock): Session {
  const budget = publishBudget(facts.identity, limits)
  return {
    ...facts,
    throttle: budget && budget.ratePerSec > 0
      ? new PublishThrottle(budget.ratePerSec, budget.burst, limits.maxThrottleMs, clock.now)
      : undefined,
    rateLimitedAt: 0,
    subscribeDenials: { count: 0, unreported: 0, reportedAt: -Infinity },
  }
}

/** The trusted facts of a session, for other rooms: a copy, without the hooks' state. */
export function sessionInfo (session: Session): SessionInfo {
  return { identity: session.identity, serial: session.serial, remoteAddress: session.remoteAddress, connectedAt: session.connectedAt }
}
