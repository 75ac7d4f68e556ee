import type { LorawanMessage } from '../../shared/lorawan.ts'
import { visibleText } from '../../shared/untrusted-text.ts'
import type { Finding } from '../finding.ts'
import type { PolicyOf } from '../schema.ts'

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
  /** Of its last `recentUplinks` judged uplinks, which were heard only through gateways foreign to it. */
  recent: boolean[]
  /** The gateways of those shifted uplinks: learned once the shift has been reported. */
  pending: string[]
}

export const GATEWAYS_LEARNED = 16
export const PENDING_KEPT = 16

export const emptyGatewayShift = (): GatewayShiftState => ({ firstAtMs: null, uplinks: 0, learned: [], recent: [], pending: [] })

/** What the engine knows of the fleet's gateways around one uplink (built from every device it judges). */
export interface GatewayContext {
  /** Whether other devices of this device's site have learned the gateway: a gateway of its own site. */
  ofOwnSite (gatewayId: string): boolean
  /** The sites whose devices have learned the gateway. */
  sitesOf (gatewayId: string): string[]
  /** Whether the gateway heard another device near the uplink's time (within the policy's alive window). */
  heardOthers (gatewayId: string): boolean
}

export interface GatewayShiftVerdict {
  state: GatewayShiftState
  finding?: Finding
  /** Gateways the device learned with this uplink (the engine records them as used at its site). */
  learnedNow: string[]
}

/**
 * lorawan-gateway-shift (STRIDE S): a fixed device heard only through
 * gateways it never used, while at least one of its usual gateways still
 * hears other devices — so its usual gateways are up and it is the device
 * that is no longer where it was (relocated), or another radio is sending
 * as it (cloned: then its uplinks alternate, which `shiftedUplinks` of the
 * last `recentUplinks` still counts).
 *
 * Not a shift, so that ordinary radio life stays quiet:
 * - before `learningUplinks` and `learningPeriod` (cold start): learning;
 * - an uplink also heard by a gateway it knows: a new gateway heard
 *   alongside is learned (a gateway installed nearby);
 * - a gateway other devices of its site use: a new gateway at the site
 *   after which the network server's ADR lowered the device's power, so
 *   only the new one hears it — many devices shift together, not one
 *   device tampered with;
 * - its usual gateways hearing nobody (an outage, a one-gateway site
 *   whose gateway is down): the device heard by a neighbour is explained,
 *   and not judged. A device alone behind its gateways therefore cannot
 *   be judged at all while they hear only it.
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
  const known = heard.filter((g) => usual.includes(g))
  if (learning || known.length > 0 || heard.some((g) => context.ofOwnSite(g))) {
    const { learned, learnedNow } = learn(state.learned, heard)
    const recent = learning ? state.recent : [...state.recent, false].slice(-policy.params.recentUplinks)
    return { state: { ...state, firstAtMs, uplinks, learned, recent }, learnedNow }
  }
  const alive = usual.filter((g) => context.heardOthers(g))
  // Its gateways hear nobody: an outage explains the path; not judged either way.
  if (alive.length === 0) return { state: { ...state, firstAtMs, uplinks }, learnedNow: [] }
  const recent = [...state.recent, true].slice(-policy.params.recentUplinks)
  const pending = [...new Set([...state.pending, ...heard])].slice(-PENDING_KEPT)
  const shifted = recent.filter(Boolean).length
  if (shifted < policy.params.shiftedUplinks) return { state: { ...state, firstAtMs, uplinks, recent, pending }, learnedNow: [] }
  const { learned, learnedNow } = learn(state.learned, pending)
  const otherSites = [...new Set(heard.flatMap((g) => context.sitesOf(g)))].filter((s) => s !== site)
  const shown = (ids: string[]) => visibleText(ids.join(','), 200)
  return {
    state: { ...state, firstAtMs, uplinks, learned, recent: [], pending: [] },
    learnedNow,
    finding: {
      policy: 'lorawan-gateway-shift',
      deviceId,
      severity: policy.severity,
      summary: `heard only through gateways it never used in ${shifted} of its last ${recent.length} uplinks${otherSites.length > 0 ? `, gateways of another site (${otherSites.join(', ')})` : ''}, while its usual gateways still hear other devices: relocated or cloned`,
      evidence: {
        shiftedUplinks: shifted, recentUplinks: recent.length, gateways: shown(heard), newGateways: shown(pending), usualGateways: shown(usual), usualGatewaysUp: shown(alive),
        otherSites: otherSites.join(',') || null, at: new Date(atMs).toISOString(),
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
