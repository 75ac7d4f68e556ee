/**
 * One end device behind a simulated network server: its activation (OTAA
 * devices join, ABP devices never do), its uplink frame counter, its
 * readings and how the gateways hear it. It builds events; the simulator
 * publishes them. No socket here, so the counters and the radio are tested
 * without a broker.
 *
 * Frame counters (LoRaWAN 1.0.x §4.3.1.5): an OTAA device starts at 0
 * after each join; an ABP device keeps counting across power cycles. Some
 * ABP devices count in 16 bits and the network server reports the counter
 * as the device sends it, so it wraps from 65535 to 0: a wrap is not a
 * reset, and detection must tell them apart (lorawan-fcnt-reset).
 */
import type { DeviceKind } from '../shared/ids.ts'
import type { PlannedDevice } from './fleet-plan.ts'
import { joinEvent, type LorawanIdentity, type LorawanSession, type PublishedEvent, uplinkEvent } from './lorawan-events.ts'
import { DeviceRadio, EU868_CHANNELS, hex, type SimGateway } from './lorawan-radio.ts'
import type { Random } from './random.ts'
import { createReadingModel, type ReadingModel } from './telemetry-models.ts'

export type Activation = 'otaa' | 'abp'

/** fPort per kind: the application's own choice, as device makers document theirs. */
const F_PORT: Record<DeviceKind, number> = { flood: 2, energy: 3, housing: 5 }

export class LorawanSimDevice {
  readonly spec: PlannedDevice
  readonly identity: LorawanIdentity
  readonly activation: Activation
  /** 16 for devices whose counter wraps at 65536; 32 otherwise. */
  readonly counterBits: 16 | 32
  readonly radio: DeviceRadio
  firmware: string
  session: LorawanSession
  /** The counter the next uplink carries. */
  fCnt: number
  /** No uplinks while set: lorawan-unknown-device waits for its moment, device-silent stops. */
  silent = false
  /** Uplinks sent since the simulation started (joins not counted). */
  uplinks = 0
  readonly #rng: Random
  readonly #model: ReadingModel
  /** Counters of the last uplinks, for replaying one (lorawan-fcnt-reset, mode replay). */
  readonly #recent: number[] = []
  #replay: number | undefined

  constructor (spec: PlannedDevice, identity: LorawanIdentity, siteGateways: readonly SimGateway[], rng: Random, options: { activation: Activation, counterBits: 16 | 32 }) {
    this.spec = spec
    this.identity = identity
    this.activation = options.activation
    this.counterBits = options.counterBits
    this.firmware = spec.firmware
    this.#rng = rng
    this.#model = createReadingModel(spec.kind, rng)
    this.radio = new DeviceRadio(siteGateways, rng)
    this.session = this.#newSession()
    // An ABP device has been counting since it was installed; a 16-bit one within 10 frames of its wrap, so even a short run sees it.
    this.fCnt = options.activation === 'otaa' ? 0 : options.counterBits === 16 ? 65_536 - Math.ceil(rng.between(1, 10)) : Math.floor(rng.between(1_000, 200_000))
  }

  /** A join: a new session (DevAddr, keys) and the counter back to 0 (LoRaWAN 1.0.x §6.2.5). */
  join (atMs: number): PublishedEvent {
    this.session = this.#newSession()
    this.fCnt = 0
    this.#recent.length = 0
    this.#replay = undefined
    return joinEvent(this.identity, this.session, atMs, this.#rng)
  }

  /** The next uplink, with the kind's readings and the gateways that heard it; the counter moves on (a replayed counter does not). */
  uplink (atMs: number): PublishedEvent {
    this.uplinks++
    const readings = this.#model.next(atMs)
    const decoded = { ...readings, fw: this.firmware }
    const rx = this.radio.sample()
    let fCnt = this.fCnt
    if (this.#replay !== undefined) {
      fCnt = this.#replay
      this.#replay = undefined
    } else {
      this.#recent.push(fCnt)
      if (this.#recent.length > 32) this.#recent.shift()
      this.fCnt = (fCnt + 1) % 2 ** this.counterBits
    }
    return uplinkEvent(this.identity, this.session, {
      atMs, fCnt, fPort: F_PORT[this.spec.kind], bytes: encodeReadings(readings, this.firmware), decoded, rx,
      spreadingFactor: spreadingFactorFor(this.radio.bestRssi), frequency: EU868_CHANNELS[rx[0]!.channel]!,
    }, this.#rng)
  }

  /** lorawan-fcnt-reset, mode reset: the device restarts counting at 0 without a join (an ABP device reset, or a replay rig). */
  resetCounter (): void {
    this.fCnt = 0
  }

  /** lorawan-fcnt-reset, mode replay: the next uplink carries the counter sent `back` frames ago; the genuine counter then resumes. */
  replayCounter (back: number): void {
    if (this.#recent.length === 0) return
    this.#replay = this.#recent[Math.max(0, this.#recent.length - back)]!
  }

  #newSession (): LorawanSession {
    // A DevAddr in the network's NetID range: 0x26/0x27 is The Things Network's (NetID 000013), ChirpStack defaults to NetID 000000.
    const prefix = this.identity.network === 'tts' ? '260b' : '01'
    return {
      devAddr: prefix + hex(this.#rng, 8 - prefix.length),
      sessionKeyId: Buffer.from(hex(this.#rng, 32), 'hex').toString('base64'),
    }
  }
}

/** ADR settles the spreading factor on the link margin: a strong link sends fast (SF7), a weak one slower. */
export function spreadingFactorFor (bestRssiDbm: number): number {
  if (bestRssiDbm > -80) return 7
  if (bestRssiDbm > -90) return 8
  if (bestRssiDbm > -100) return 9
  if (bestRssiDbm > -110) return 10
  return 11
}

/**
 * The bytes a device of the kind sends, as a maker's codec would lay them
 * out: a firmware version (3 bytes), then each reading as a big-endian
 * float32. The decoded payload carries the same values.
 */
export function encodeReadings (readings: Record<string, number>, firmware: string): Buffer {
  const values = Object.values(readings)
  const bytes = Buffer.alloc(3 + 4 * values.length)
  firmware.split('.').slice(0, 3).forEach((part, i) => bytes.writeUInt8(Math.min(255, Number(part) || 0), i))
  values.forEach((value, i) => bytes.writeFloatBE(value, 3 + 4 * i))
  return bytes
}
