import type { LorawanMessage } from '../../shared/lorawan.ts'
import { visibleText } from '../../shared/untrusted-text.ts'
import type { Finding } from '../finding.ts'
import type { PolicyOf } from '../schema.ts'

/** One judged uplink: heard by a gateway it knows; heard only by foreign ones; and whether its usual gateways were up then. */
export interface ShiftMark { atMs: number, mark: 'usual' | 'suspect' | 'confirmed' }

/** What lorawan-gateway-shift has learned of one device. */
export interface GatewayShiftState {
  /** The first uplink's time (network server clock): the learning period runs from it. */
  firstAtMs: number | null
  uplinks: number
  /**
   * The gateways that have heard it, with how many uplinks each (at most
   * GATEWAYS_LEARNED, the most used kept). Pairs, not an object: gateway
   * ids are the network server's strings, and `__proto__` is one.
   */
  learned: Array<[string, number]>
  /** Its last `recentUplinks` judged uplinks. */
  recent: ShiftMark[]
  /** The gateways of its suspect uplinks: learned once the shift has been reported. */
  pending: string[]
}

export const GATEWAYS_LEARNED = 16
export const PENDING_KEPT = 16

export const emptyGatewayShift = (): GatewayShiftState => ({ firstAtMs: null, uplinks: 0, learned: [], recent: [], pending: [] })

/** What the engine knows of the fleet's gateways (built from every device it judges). */
export interface GatewayContext {
  /** Whether other devices of this device's site have learned the gateway: a gateway of its own site. */
  ofOwnSite (gatewayId: string): boolean
  /** The sites whose other devices have learned the gateway. */
  sitesOf (gatewayId: string): string[]
  /**
   * Whether the gateway was up around `atMs`: it heard another device
   * before and another after, with no silence longer than the policy's
   * `gatewayAliveWindow` between them. Undefined while that cannot be
   * told yet (nothing heard after `atMs` so far).
   */
  upAround (gatewayId: string, atMs: number): boolean | undefined
}

export interface GatewayShiftVerdict {
  state: GatewayShiftState
  finding?: Finding
  /** Gateways the device learned with this uplink (the engine records them as used at its site). */
  learnedNow: string[]
}

/**
 * lorawan-gateway-shift (STRIDE S): a fixed device heard only through
 * gateways it never used, while its usual gateways are up and hearing
 * other devices — so it is the device that is no longer where it was
 * (relocated), or another radio is sending as it (cloned: then its
 * uplinks alternate, which `shiftedUplinks` of the last `recentUplinks`
 * still counts).
 *
 * Not a shift, so that ordinary radio life stays quiet:
 * - before `learningUplinks` and `learningPeriod` (cold start): learning;
 * - an uplink also heard by a gateway it knows: a new gateway heard
 *   alongside is learned (a gateway installed nearby);
 * - a gateway other devices of its site use: a new gateway at the site
 *   after which the network server's ADR lowered the device's power, so
 *   only the new one hears it — many devices shift together, not one
 *   device tampered with;
 * - its usual gateways silent around the uplink (an outage; a one-gateway
 *   site whose gateway is down): the device heard by a neighbour is
 *   explained. Whether they were up is known only once they hear someone
 *   after the uplink, so an uplink is a suspect until then
 *   (confirmGatewayShift, run again as the fleet's uplinks arrive). A
 *   device alone behind its gateways cannot be judged: nobody else shows
 *   they are up.
 * Once reported, the new gateways are learned: a device moved for good is
 * one alert, not one per uplink. No auto-clear: the alert is an event
 * (a move or a clone) for a person to confirm.
 */
export function lorawanGatewayShiftRule (policy: PolicyOf<'lorawan-gateway-shift'>, deviceId: string, site: string, state: GatewayShiftState, message: LorawanMessage, context: GatewayContext): GatewayShiftVerdict {
  const heard = [...new Set(message.gateways.map((g) => g.gatewayId))]
  if (message.event !== 'up' || heard.length === 0) return { state, learnedNow: [] }
  const atMs = message.receivedAtMs
  const firstAtMs = state.firstAtMs === null ? atMs : Math.min(state.firstAtMs, atMs)
  const uplinks = state.uplinks + 1
  const learning = uplinks <= policy.params.learningUplinks || atMs - firstAtMs < policy.params.learningPeriod
  const usual = state.learned.map(([g]) => g)
  const mark = (m: ShiftMark['mark']) => [...state.recent, { atMs, mark: m }].sort((a, b) => a.atMs - b.atMs).slice(-policy.params.recentUplinks)
  if (learning || heard.some((g) => usual.includes(g)) || heard.some((g) => context.ofOwnSite(g))) {
    const { learned, learnedNow } = learn(state.learned, heard)
    return { state: { ...state, firstAtMs, uplinks, learned, recent: learning ? state.recent : mark('usual') }, learnedNow }
  }
  const pending = [...new Set([...state.pending, ...heard])].slice(-PENDING_KEPT)
  return confirmGatewayShift(policy, deviceId, site, { ...state, firstAtMs, uplinks, recent: mark('suspect'), pending }, context, atMs)
}

/** Whether the device has suspect uplinks still waiting to learn if its usual gateways were up. */
export function hasSuspects (state: GatewayShiftState): boolean {
  return state.recent.some((m) => m.mark === 'suspect')
}

/**
 * Settles the device's suspect uplinks whose usual gateways can now be
 * told up (confirmed) or down (dropped: an outage explains them), and
 * reports the shift once `shiftedUplinks` of the recent ones are confirmed.
 */
export function confirmGatewayShift (policy: PolicyOf<'lorawan-gateway-shift'>, deviceId: string, site: string, state: GatewayShiftState, context: GatewayContext, atMs?: number): GatewayShiftVerdict {
  const usual = state.learned.map(([g]) => g)
  const recent = state.recent.flatMap((m): ShiftMark[] => {
    if (m.mark !== 'suspect') return [m]
    const up = usual.map((g) => context.upAround(g, m.atMs))
    if (up.some((u) => u === true)) return [{ ...m, mark: 'confirmed' }]
    return up.some((u) => u === undefined) ? [m] : []
  })
  const confirmed = recent.filter((m) => m.mark === 'confirmed')
  if (confirmed.length < policy.params.shiftedUplinks) return { state: { ...state, recent }, learnedNow: [] }
  const { learned, learnedNow } = learn(state.learned, state.pending)
  const otherSites = [...new Set(state.pending.flatMap((g) => context.sitesOf(g)))].filter((s) => s !== site)
  const shown = (ids: string[]) => visibleText(ids.join(','), 200)
  const up = usual.filter((g) => confirmed.some((m) => context.upAround(g, m.atMs) === true))
  return {
    state: { ...state, learned, recent: [], pending: [] },
    learnedNow,
    finding: {
      policy: 'lorawan-gateway-shift',
      deviceId,
      severity: policy.severity,
      summary: `heard only through gateways it never used in ${confirmed.length} of its last ${recent.length} uplinks${otherSites.length > 0 ? `, gateways of another site (${otherSites.join(', ')})` : ''}, while its usual gateways were up and hearing other devices: relocated or cloned`,
      evidence: {
        shiftedUplinks: confirmed.length, recentUplinks: recent.length, newGateways: shown(state.pending), usualGateways: shown(usual), usualGatewaysUp: shown(up),
        otherSites: otherSites.join(',') || null, at: new Date(atMs ?? confirmed.at(-1)!.atMs).toISOString(),
      },
    },
  }
}

/** Counts the uplink for each gateway; keeps the GATEWAYS_LEARNED most used. */
function learn (learned: Array<[string, number]>, gateways: string[]): { learned: Array<[string, number]>, learnedNow: string[] } {
  const next = new Map(learned)
  const learnedNow = gateways.filter((g) => !next.has(g))
  for (const g of gateways) next.set(g, (next.get(g) ?? 0) + 1)
  if (next.size <= GATEWAYS_LEARNED) return { learned: [...next], learnedNow }
  // The least used go first; the gateways just heard stay (they are the device's present).
  const kept = [...next].sort((a, b) => Number(gateways.includes(b[0])) - Number(gateways.includes(a[0])) || b[1] - a[1]).slice(0, GATEWAYS_LEARNED)
  return { learned: kept, learnedNow: learnedNow.filter((g) => kept.some(([k]) => k === g)) }
}
