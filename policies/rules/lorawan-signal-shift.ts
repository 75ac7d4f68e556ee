import type { LorawanMessage } from '../../shared/lorawan.ts'
import { visibleText } from '../../shared/untrusted-text.ts'
import type { Finding } from '../finding.ts'
import type { PolicyOf } from '../schema.ts'

/**
 * A device's radio baseline at one gateway: RSSI and SNR centre and spread
 * (a σ estimate), in dB. Seeded by the median and MAD of the first
 * `minSamples` readings (so one fade while learning cannot skew it), then
 * followed slowly (EWMA of the centre and of the absolute deviation,
 * each step clipped) by readings within the baseline only: seasons and
 * foliage drift in; a shift does not.
 */
export interface SignalBaseline {
  gatewayId: string
  samples: number
  rssi: number | null
  rssiSigma: number
  snr: number
  snrSigma: number
  /** [rssi or null, snr] readings until minSamples, then null. */
  warmup: Array<[number | null, number]> | null
}

export interface SignalShiftState {
  /** Per gateway (at most BASELINES_KEPT, the most recently heard kept). */
  baselines: SignalBaseline[]
  /** Consecutive uplinks off the baseline, and on it again since the alert. */
  shifted: number
  steady: number
  /** A finding is out and has not cleared. */
  alerting: boolean
}

export const BASELINES_KEPT = 8
const EWMA_WEIGHT = 0.05
/** σ from the median absolute deviation, and from the mean absolute deviation, of a normal spread. */
const MAD_TO_SIGMA = 1.4826
const MEAN_AD_TO_SIGMA = 1.2533
/** The smallest spread believed, dB: reported RSSI and SNR are whole or quarter dB. */
const MIN_SIGMA_DB = 0.5

export const emptySignalShift = (): SignalShiftState => ({ baselines: [], shifted: 0, steady: 0, alerting: false })

export interface SignalShiftVerdict {
  state: SignalShiftState
  finding?: Finding
  clear?: string
}

/**
 * lorawan-signal-shift (STRIDE T): a fixed device's RSSI or SNR far from
 * its learned baseline — `deviations` robust σ and at least
 * `minRssiShiftDb` / `minSnrShiftDb` — at more than half of the gateways
 * that know it (a fade or a busy gateway touches one path, a moved,
 * shielded or re-antennaed device all of them), for `uplinks` uplinks in a
 * row (one deep fade is not a shift). A gateway jammed where it stands is
 * every device's shift at a site with one gateway (the storm guard makes
 * that one alert); with more gateways the others outvote it.
 * An uplink heard by no gateway with a baseline is not judged. Clears after
 * `uplinks` uplinks back on the baseline; after `relearnAfter` shifted
 * uplinks the new level is learned (a device moved for good is one alert,
 * left for a person to resolve).
 * ChirpStack leaves out an RSSI of 0 (protobuf's JSON omits defaults) and
 * no real RSSI is 0, so an RSSI of 0 is read as not reported.
 */
export function lorawanSignalShiftRule (policy: PolicyOf<'lorawan-signal-shift'>, deviceId: string, state: SignalShiftState, message: LorawanMessage): SignalShiftVerdict {
  if (message.event !== 'up' || message.gateways.length === 0) return { state }
  const { minSamples, deviations, minRssiShiftDb, minSnrShiftDb, uplinks, relearnAfter } = policy.params
  const baselines = new Map(state.baselines.map((b) => [b.gatewayId, b]))
  const votes: Array<{ gatewayId: string, off: boolean, rssiDelta: number | null, snrDelta: number }> = []
  for (const reading of message.gateways) {
    const rssi = reading.rssi === 0 ? null : reading.rssi
    const base = baselines.get(reading.gatewayId)
    if (base && base.warmup === null) {
      const rssiDelta = rssi === null || base.rssi === null ? null : rssi - base.rssi
      const snrDelta = reading.snr - base.snr
      const off = (rssiDelta !== null && Math.abs(rssiDelta) >= Math.max(deviations * base.rssiSigma, minRssiShiftDb)) ||
        Math.abs(snrDelta) >= Math.max(deviations * base.snrSigma, minSnrShiftDb)
      votes.push({ gatewayId: reading.gatewayId, off, rssiDelta, snrDelta })
      if (off) continue
    }
    baselines.delete(reading.gatewayId) // re-insert: Map order is recency
    baselines.set(reading.gatewayId, learn(base, reading.gatewayId, rssi, reading.snr, minSamples))
  }
  while (baselines.size > BASELINES_KEPT) baselines.delete(baselines.keys().next().value!)
  const kept = [...baselines.values()]
  if (votes.length === 0) return { state: { ...state, baselines: kept } }
  const offVotes = votes.filter((v) => v.off)
  if (offVotes.length * 2 <= votes.length) {
    const steady = state.alerting ? state.steady + 1 : 0
    if (state.alerting && steady >= uplinks) return { state: { baselines: kept, shifted: 0, steady: 0, alerting: false }, clear: `RSSI/SNR back on the baseline for ${steady} uplinks` }
    return { state: { baselines: kept, shifted: 0, steady, alerting: state.alerting } }
  }
  const shifted = state.shifted + 1
  if (shifted < uplinks) return { state: { baselines: kept, shifted, steady: 0, alerting: state.alerting } }
  const median = (values: number[]) => values.length === 0 ? null : Math.round([...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]! * 10) / 10
  const rssiDelta = median(offVotes.flatMap((v) => v.rssiDelta === null ? [] : [v.rssiDelta]))
  const snrDelta = median(offVotes.map((v) => v.snrDelta))
  const finding: Finding = {
    policy: 'lorawan-signal-shift',
    deviceId,
    severity: policy.severity,
    summary: `RSSI/SNR off its baseline at ${offVotes.length} of ${votes.length} gateways for ${shifted} uplinks in a row (RSSI ${signed(rssiDelta)} dB, SNR ${signed(snrDelta)} dB): moved, tampered with, or jammed`,
    evidence: {
      uplinks: shifted, gatewaysOff: offVotes.length, gatewaysJudged: votes.length, rssiDeltaDb: rssiDelta, snrDeltaDb: snrDelta,
      gateways: visibleText(offVotes.map((v) => v.gatewayId).join(','), 200), at: new Date(message.receivedAtMs).toISOString(),
    },
  }
  if (shifted >= relearnAfter) {
    // The new level has held long enough to be the device's place now: learn it afresh, at every gateway
    // (a device that moved changed all its paths, including those of gateways that missed this uplink).
    const relearned = kept.map((b) => learn(undefined, b.gatewayId, null, 0, minSamples, true))
    return { state: { baselines: relearned, shifted: 0, steady: 0, alerting: false }, finding }
  }
  return { state: { baselines: kept, shifted, steady: 0, alerting: true }, finding }
}

function signed (value: number | null): string {
  return value === null ? 'n/a' : `${value > 0 ? '+' : ''}${value}`
}

function learn (base: SignalBaseline | undefined, gatewayId: string, rssi: number | null, snr: number, minSamples: number, reset = false): SignalBaseline {
  if (reset) return { gatewayId, samples: 0, rssi: null, rssiSigma: 0, snr: 0, snrSigma: 0, warmup: [] }
  const current = base ?? { gatewayId, samples: 0, rssi: null, rssiSigma: 0, snr: 0, snrSigma: 0, warmup: [] }
  if (current.warmup !== null) {
    const warmup = [...current.warmup, [rssi, snr] as [number | null, number]]
    if (warmup.length < minSamples) return { ...current, samples: warmup.length, warmup }
    const rssis = warmup.flatMap(([r]) => r === null ? [] : [r])
    const snrs = warmup.map(([, s]) => s)
    const rssiCentre = rssis.length >= Math.ceil(minSamples / 2) ? medianOf(rssis) : null
    return {
      gatewayId, samples: warmup.length, warmup: null,
      rssi: rssiCentre, rssiSigma: rssiCentre === null ? 0 : Math.max(MIN_SIGMA_DB, MAD_TO_SIGMA * medianOf(rssis.map((r) => Math.abs(r - rssiCentre)))),
      snr: medianOf(snrs), snrSigma: Math.max(MIN_SIGMA_DB, MAD_TO_SIGMA * medianOf(snrs.map((s) => Math.abs(s - medianOf(snrs))))),
    }
  }
  const follow = (centre: number, sigma: number, value: number) => {
    const step = Math.max(-3 * sigma, Math.min(3 * sigma, value - centre))
    return { centre: centre + EWMA_WEIGHT * step, sigma: Math.max(MIN_SIGMA_DB, sigma + EWMA_WEIGHT * (MEAN_AD_TO_SIGMA * Math.abs(step) - sigma)) }
  }
  const s = follow(current.snr, current.snrSigma, snr)
  const r = rssi !== null && current.rssi !== null ? follow(current.rssi, current.rssiSigma, rssi) : { centre: current.rssi, sigma: current.rssiSigma }
  return { gatewayId, samples: current.samples + 1, warmup: null, rssi: r.centre, rssiSigma: r.sigma, snr: s.centre, snrSigma: s.sigma }
}

function medianOf (values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}
