/**
 * The radio side of a simulated LoRaWAN fleet: gateways per site, which of
 * them hear each device, and how well. Each device/gateway link has its own
 * mean RSSI and SNR (distance, walls, antenna) with noise on every uplink,
 * so a detection learning a device's baseline sees what it would in the
 * field: steady means, a few dB of spread, gateways that sometimes miss a
 * frame. Injected shifts (lorawan-gateway-shift, lorawan-signal-shift)
 * change this model, not the JSON, so both networks carry them alike.
 */
import type { LorawanNetwork } from '../shared/lorawan.ts'
import type { Random } from './random.ts'

export interface SimGateway {
  site: string
  /** The network's id: ChirpStack's gatewayId (the EUI, 16 hex); The Things Stack's gateway_id (`eui-<eui>`, its default). */
  gatewayId: string
  /** The gateway EUI, 16 hex, lower-case. */
  eui: string
}

/** What one gateway reported of one uplink. */
export interface RxSample {
  gateway: SimGateway
  rssi: number
  snr: number
  /** Index of the EU868 channel the frame came in on. */
  channel: number
}

/** Gateways hear down to about −120 dBm at SF7…SF9 and report SNR from about −20 to +12 dB. */
export const RSSI_RANGE = { min: -120, max: -40 } as const
export const SNR_RANGE = { min: -20, max: 12 } as const

/** EU868's eight default uplink channels, Hz. */
export const EU868_CHANNELS = [868_100_000, 868_300_000, 868_500_000, 867_100_000, 867_300_000, 867_500_000, 867_700_000, 867_900_000] as const

const clamp = (value: number, range: { min: number, max: number }): number => Math.min(range.max, Math.max(range.min, value))
const round1 = (value: number): number => Math.round(value * 10) / 10

export function hex (rng: Random, digits: number): string {
  let text = ''
  for (let i = 0; i < digits; i++) text += Math.floor(rng.next() * 16).toString(16)
  return text
}

/** 2–3 gateways per site, each with an EUI under a gateway maker's prefix, named as the network names them. */
export function planGateways (sites: readonly string[], network: LorawanNetwork, rng: Random): Map<string, SimGateway[]> {
  const bySite = new Map<string, SimGateway[]>()
  for (const site of sites) {
    const count = rng.next() < 0.5 ? 2 : 3
    bySite.set(site, Array.from({ length: count }, () => newGateway(site, network, rng)))
  }
  return bySite
}

/** A gateway no device of the fleet was ever heard through (a rogue or a newly installed one). */
export function newGateway (site: string, network: LorawanNetwork, rng: Random): SimGateway {
  const eui = `0016c001ff${hex(rng, 6)}`
  return { site, eui, gatewayId: network === 'chirpstack' ? eui : `eui-${eui}` }
}

interface Link { gateway: SimGateway, rssiMean: number, snrMean: number }

/** How one device is heard: 1–3 of its site's gateways, each with its own mean RSSI/SNR. */
export class DeviceRadio {
  #links: Link[]
  #rssiOffset = 0
  #snrOffset = 0
  readonly #rng: Random

  constructor (siteGateways: readonly SimGateway[], rng: Random) {
    this.#rng = rng
    const count = Math.min(siteGateways.length, 1 + Math.floor(rng.next() * 3))
    const pool = [...siteGateways]
    this.#links = Array.from({ length: count }, () => this.#link(pool.splice(Math.floor(rng.next() * pool.length), 1)[0]!))
  }

  /** The gateways this device is heard through now. */
  get gateways (): SimGateway[] {
    return this.#links.map((link) => link.gateway)
  }

  /**
   * One uplink as heard: each gateway misses it now and then (10 %), but
   * one always hears it (otherwise there is no uplink to publish). RSSI
   * has ±2.5 dB of noise, SNR ±1 dB, both within what gateways report.
   */
  sample (): RxSample[] {
    const channel = Math.floor(this.#rng.next() * EU868_CHANNELS.length)
    const heard = this.#links.filter(() => this.#rng.next() >= 0.1)
    const links = heard.length > 0 ? heard : [this.#links[Math.floor(this.#rng.next() * this.#links.length)]!]
    return links.map((link) => ({
      gateway: link.gateway,
      rssi: Math.round(clamp(link.rssiMean + this.#rssiOffset + this.#rng.gaussian() * 2.5, RSSI_RANGE)),
      snr: round1(clamp(link.snrMean + this.#snrOffset + this.#rng.gaussian(), SNR_RANGE)),
      channel,
    }))
  }

  /** The best mean RSSI of its links: what ADR settles the data rate on. */
  get bestRssi (): number {
    return Math.max(...this.#links.map((link) => link.rssiMean)) + this.#rssiOffset
  }

  /** lorawan-gateway-shift: from now on heard only through `gateways` (new links, fresh means). */
  hearOnlyThrough (gateways: readonly SimGateway[]): void {
    this.#links = gateways.map((gateway) => this.#link(gateway))
  }

  /** lorawan-signal-shift: every link weaker by these dB from now on (moved, shielded, or jammed). */
  weaken (rssiDb: number, snrDb: number): void {
    this.#rssiOffset -= rssiDb
    this.#snrOffset -= snrDb
  }

  /**
   * Means between −92 and −50 dBm, so a 25 dB drop still lands inside what
   * a gateway reports; SNR follows RSSI (a weaker link is a noisier one),
   * with a few dB of its own spread.
   */
  #link (gateway: SimGateway): Link {
    const rssiMean = this.#rng.between(-92, -50)
    return { gateway, rssiMean, snrMean: clamp((rssiMean + 95) * 0.35 + this.#rng.between(-2, 2), { min: -5, max: 10 }) }
  }
}
