/**
 * A synthetic LoRaWAN fleet's day, as a network server's integrations
 * would report it to detection: devices every 10–15 min at three sites
 * (three gateways, two, and one), each heard by the gateways in its
 * range with RSSI/SNR jitter and the odd deep fade, frames lost when no
 * gateway heard them. Seeded, so a run is repeatable; the shape is
 * generic (not the simulator's) so the policies are held to radio life,
 * not to one generator.
 */
import type { PolicyEngine } from '../../policies/index.ts'
import type { LorawanGateway, LorawanObservation } from '../../shared/lorawan.ts'

export interface RadioPath { gatewayId: string, rssi: number, snr: number }
export interface RadioDevice {
  deviceId: string
  devEui: string
  kind: 'flood' | 'energy' | 'housing'
  site: string
  integrationId: string
  network: 'chirpstack' | 'tts'
  intervalMs: number
  fCnt: number
  /** 16-bit frame counter: wraps 0xFFFF → 0. */
  counterBits: 16 | 32
  paths: RadioPath[]
}

export interface Outage { gatewayId: string, fromMs: number, untilMs: number }

/** mulberry32: a small seeded generator, so the day is the same on every run. */
export function seeded (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296
  }
}

export function gaussian (random: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random())
}

/** Below this RSSI a gateway does not demodulate the frame. */
export const SENSITIVITY_DBM = -130

export const SITES: Record<string, { integrationId: string, network: 'chirpstack' | 'tts', gateways: string[] }> = {
  riverside: { integrationId: 'cs-council', network: 'chirpstack', gateways: ['gw-r1', 'gw-r2', 'gw-r3'] },
  hillside: { integrationId: 'cs-council', network: 'chirpstack', gateways: ['gw-h1', 'gw-h2'] },
  estate: { integrationId: 'tts-housing', network: 'tts', gateways: ['gw-e1'] },
}

/** A fleet: `perSite` devices per site, each with paths to its site's gateways (and, weakly, a neighbour's). */
export function radioFleet (random: () => number, perSite: Record<string, number> = { riverside: 6, hillside: 4, estate: 2 }): RadioDevice[] {
  const devices: RadioDevice[] = []
  const kinds = ['flood', 'energy', 'housing'] as const
  let n = 0
  for (const [site, count] of Object.entries(perSite)) {
    const { integrationId, network, gateways } = SITES[site]!
    for (let i = 0; i < count; i++, n++) {
      const paths = gateways.map((gatewayId, g) => ({ gatewayId, rssi: -75 - g * 12 - random() * 30, snr: 9 - g * 4 - random() * 8 }))
      // Some devices reach a gateway of the next site, at the edge of sensitivity.
      if (site === 'riverside' && i % 3 === 0) paths.push({ gatewayId: 'gw-h1', rssi: -126, snr: -15 })
      devices.push({
        deviceId: `${site}-${i + 1}`, devEui: (0x70b3d500_00000000n + BigInt(n)).toString(16).padStart(16, '0'), kind: kinds[n % 3]!, site, integrationId, network,
        intervalMs: 600_000 + Math.round(random() * 300_000), fCnt: Math.floor(random() * 500), counterBits: 32, paths,
      })
    }
  }
  return devices
}

/** Whoever publishes an event, it reaches detection as this (the collector's reading of the registry). */
export function observe (device: RadioDevice, message: Partial<LorawanObservation['message']> & { receivedAtMs: number }): LorawanObservation {
  return {
    integrationId: device.integrationId, network: device.network,
    device: { deviceId: device.deviceId, kind: device.kind, site: device.site },
    message: { network: device.network, event: 'up', devEui: device.devEui, gateways: [], ...message },
  }
}

/** One uplink's reception: each path with jitter (σ 2.5 dB RSSI, 1.5 dB SNR) and a 4 % deep fade, heard if above sensitivity and its gateway is up. */
export function receive (device: RadioDevice, random: () => number, atMs: number, outages: readonly Outage[] = [], offsetDb = 0): LorawanGateway[] {
  const heard: LorawanGateway[] = []
  for (const path of device.paths) {
    if (outages.some((o) => o.gatewayId === path.gatewayId && o.fromMs <= atMs && atMs < o.untilMs)) continue
    const fade = random() < 0.04 ? -10 - random() * 12 : 0
    const rssi = Math.round(path.rssi + offsetDb + fade + 2.5 * gaussian(random))
    const snr = Math.round((path.snr + offsetDb / 2 + fade / 2 + 1.5 * gaussian(random)) * 4) / 4
    if (rssi >= SENSITIVITY_DBM) heard.push({ gatewayId: path.gatewayId, rssi, snr })
  }
  return heard
}

export interface DayOptions {
  startMs: number
  durationMs?: number
  outages?: Outage[]
  /** Device id → time of a legitimate rejoin (its counter restarts at 0). */
  rejoins?: Record<string, number>
}

/** The day's events in time order; advances each device's counter (so a second day continues the first). */
export function radioDay (devices: RadioDevice[], random: () => number, options: DayOptions): LorawanObservation[] {
  const events: LorawanObservation[] = []
  const end = options.startMs + (options.durationMs ?? 86_400_000)
  for (const device of devices) {
    let at = options.startMs + Math.round(random() * device.intervalMs)
    let rejoinAt = options.rejoins?.[device.deviceId]
    while (at < end) {
      if (rejoinAt !== undefined && at >= rejoinAt) {
        events.push(observe(device, { event: 'join', receivedAtMs: rejoinAt }))
        device.fCnt = 0
        rejoinAt = undefined
      }
      const gateways = receive(device, random, at, options.outages)
      if (gateways.length > 0) events.push(observe(device, { fCnt: device.fCnt, fPort: 2, receivedAtMs: at, gateways }))
      device.fCnt = device.counterBits === 16 ? (device.fCnt + 1) & 0xffff : (device.fCnt + 1) % 0x1_0000_0000
      at += device.intervalMs + Math.round((random() - 0.5) * device.intervalMs / 10)
    }
  }
  return events.sort((a, b) => a.message.receivedAtMs - b.message.receivedAtMs)
}

export function testClock (startMs: number) {
  const clock = { ms: startMs, now: () => clock.ms }
  return clock
}

/** Feeds events in order, the engine's clock a moment after each is received; the findings as `policy device: summary`. */
export function feed (engine: PolicyEngine, clock: { ms: number }, events: readonly LorawanObservation[]): string[] {
  const found: string[] = []
  for (const event of events) {
    clock.ms = Math.max(clock.ms, event.message.receivedAtMs + 300)
    for (const f of engine.onLorawan(event).findings) found.push(`${f.policy} ${f.deviceId}: ${f.summary}`)
  }
  return found
}
