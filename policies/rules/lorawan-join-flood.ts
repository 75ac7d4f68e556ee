import type { Finding } from '../finding.ts'
import type { PolicyOf } from '../schema.ts'

/** Join times kept per device: the threshold's worth twice over, so a join delivered late still finds its neighbours. */
export const DEVICE_JOINS_KEPT = 32

/** Inserts `atMs` into sorted `times`, keeping the last `cap`. */
export function insertTime (times: readonly number[], atMs: number, cap: number): number[] {
  const at = times.findIndex((t) => t > atMs)
  const index = at === -1 ? times.length : at
  return [...times.slice(0, index), atMs, ...times.slice(index)].slice(-cap)
}

/** The most events in any `windowMs` that holds `atMs` (times sorted, `atMs` among them). */
export function busiestWindowAround (times: readonly number[], atMs: number, windowMs: number): { count: number, firstMs: number, lastMs: number } {
  let best = { count: 0, firstMs: atMs, lastMs: atMs }
  let start = 0
  for (let end = 0; end < times.length; end++) {
    while (times[end]! - times[start]! > windowMs) start++
    if (times[start]! <= atMs && atMs <= times[end]! && end - start + 1 > best.count) best = { count: end - start + 1, firstMs: times[start]!, lastMs: times[end]! }
  }
  return best
}

/**
 * lorawan-join-flood for one device (STRIDE D): `deviceJoins` joins within
 * `window`, on the network server's clock (so a backlog of joins
 * delivered at once is judged at the times they happened). A device
 * rejoins when it reboots or loses its link: twice in an hour is
 * unusual, four times is a device in a join loop, a cloned root key, or
 * someone exhausting the network server's DevNonces. `times` holds the
 * new join already (insertTime).
 */
export function lorawanDeviceJoinFloodRule (policy: PolicyOf<'lorawan-join-flood'>, deviceId: string, times: readonly number[], atMs: number): Finding | undefined {
  const busiest = busiestWindowAround(times, atMs, policy.params.window)
  if (busiest.count < policy.params.deviceJoins) return undefined
  return {
    policy: 'lorawan-join-flood',
    deviceId,
    severity: policy.severity,
    summary: `${busiest.count} joins within ${Math.round((busiest.lastMs - busiest.firstMs) / 60_000)} min (threshold ${policy.params.deviceJoins} within ${Math.round(policy.params.window / 60_000)} min)`,
    evidence: { joins: busiest.count, threshold: policy.params.deviceJoins, windowMs: policy.params.window, firstAt: new Date(busiest.firstMs).toISOString(), lastAt: new Date(busiest.lastMs).toISOString(), judgedOn: 'device' },
  }
}

/** What the integration-wide count remembers: each DevEUI's last join, and the times of repeat joins. */
export interface IntegrationJoins {
  lastJoinByDevEui: Map<string, number>
  repeats: number[]
}

/** DevEUIs remembered per integration (the integration chooses them: bounded, oldest forgotten). */
export const DEVEUIS_KEPT = 50_000

/**
 * lorawan-join-flood across one integration: `integrationRepeats` repeat
 * joins — a DevEUI's second or later within `window` — in the window. A
 * site's power cut makes every device join once, however large the
 * site, so first joins are not counted; many devices each rejoining a
 * few times below the per-device threshold are. Keyed `integration:<id>`.
 * Mutates `state` (the engine's bounded per-integration memory).
 */
export function lorawanIntegrationJoinFloodRule (policy: PolicyOf<'lorawan-join-flood'>, integrationId: string, state: IntegrationJoins, devEui: string, atMs: number): Finding | undefined {
  const window = policy.params.window
  const last = state.lastJoinByDevEui.get(devEui)
  state.lastJoinByDevEui.delete(devEui) // re-insert: Map order is recency
  if (state.lastJoinByDevEui.size >= DEVEUIS_KEPT) state.lastJoinByDevEui.delete(state.lastJoinByDevEui.keys().next().value!)
  state.lastJoinByDevEui.set(devEui, Math.max(last ?? atMs, atMs))
  if (last === undefined || Math.abs(atMs - last) > window) return undefined
  state.repeats = insertTime(state.repeats, atMs, policy.params.integrationRepeats * 2).filter((t) => t >= atMs - window * 2)
  const busiest = busiestWindowAround(state.repeats, atMs, window)
  if (busiest.count < policy.params.integrationRepeats) return undefined
  return {
    policy: 'lorawan-join-flood',
    deviceId: `integration:${integrationId}`,
    severity: policy.severity,
    summary: `${busiest.count} repeat joins through integration ${integrationId} within ${Math.round((busiest.lastMs - busiest.firstMs) / 60_000)} min (threshold ${policy.params.integrationRepeats} within ${Math.round(window / 60_000)} min)`,
    evidence: { repeatJoins: busiest.count, threshold: policy.params.integrationRepeats, windowMs: window, firstAt: new Date(busiest.firstMs).toISOString(), lastAt: new Date(busiest.lastMs).toISOString(), judgedOn: 'integration', integrationId },
  }
}
