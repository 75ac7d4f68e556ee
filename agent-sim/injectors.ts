/**
 * Turns each scenario incident into what a device really does on the wire,
 * so the broker and the collector see the misbehaviour and not a label.
 */
import mqtt from 'mqtt'
import { createUntrustedIdentity, type FleetPki } from '../pki/index.ts'
import type { Injection } from './scenario.ts'
import { SimDevice, type DeviceCredentials, type DeviceEnvironment } from './sim-device.ts'
import { SimStats } from './stats.ts'
import { Random } from './random.ts'

export interface InjectionContext {
  device: SimDevice
  /** Another device of the fleet, for a publish outside the device's own topic. */
  neighbour: SimDevice
  credentials: DeviceCredentials
  environment: DeviceEnvironment
  pki: FleetPki
  /** Timers and clients an injection leaves running, stopped at the end of the run. */
  cleanups: Array<() => Promise<void> | void>
}

/** Injections that shape the device before it first connects. */
export function injectBeforeStart (injection: Injection, device: SimDevice): boolean {
  if (injection.at > 0) return false
  switch (injection.policy) {
    case 'cert-expiry':
      return true // the certificate itself was issued short-lived (provision.ts)
    case 'cert-rejected':
      return injection.mode === 'expired' // the device only has an expired certificate (provision.ts)
    case 'firmware-outdated':
    case 'firmware-vulnerable':
      device.firmware = injection.fw
      return true
    default:
      return false
  }
}

export async function inject (injection: Injection, context: InjectionContext): Promise<void> {
  const { device } = context
  switch (injection.policy) {
    case 'cert-expiry':
      return
    case 'cert-rejected':
      if (injection.mode !== 'expired') await attemptWithUntrustedCertificate(injection.mode, injection.attempts, context)
      return
    case 'cert-revoked-attempt':
      // The device keeps its revoked certificate and keeps trying, as a stolen or decommissioned one would.
      await context.pki.revoke(device.spec.deviceId)
      return
    case 'firmware-outdated':
    case 'firmware-vulnerable':
      device.firmware = injection.fw
      return
    case 'firmware-downgrade':
      device.downgradeNext(injection.fw)
      return
    case 'rate-burst':
      if (injection.mode === 'flood') device.flood(injection.count)
      else device.burst(injection.ratePerSec, injection.duration)
      return
    case 'device-silent':
      if (injection.duration !== undefined) device.outage(injection.duration)
      else device.silence(injection.disconnect)
      return
    case 'acl-violation':
      if (injection.mode === 'foreign-publish') device.publishRaw(context.neighbour.topic, '{"spoofed":true}')
      else device.subscribeRaw('places/#')
      return
    case 'identity-clone':
      await startClone(injection.duration, context)
      return
    case 'connection-flapping':
      flap(injection.count, injection.every, context)
      return
    case 'value-implausible':
      device.implausibleNext(injection.mode ?? (device.spec.kind === 'flood' ? 'jump' : device.spec.kind === 'energy' ? 'backwards' : 'range'))
      return
    case 'payload-invalid':
      if (injection.mode === 'malformed-packet') device.malformedNext(injection.count)
      else device.corruptNext(injection.mode, injection.count)
      return
    case 'clock-skew':
      device.skewClock(injection.direction === 'ahead' ? injection.offset : -injection.offset)
      return
    case 'replay':
      device.replayNext(injection.count)
  }
}

/** A certificate the fleet CA never signed, claiming this device's identity, tried a few times. */
async function attemptWithUntrustedCertificate (mode: 'foreign-ca' | 'self-signed', attempts: number, context: InjectionContext): Promise<void> {
  const { spec } = context.device
  const rogue = await createUntrustedIdentity(spec.deviceId, spec.kind, spec.site, mode)
  for (let attempt = 0; attempt < attempts; attempt++) {
    await new Promise<void>((resolve) => {
      const client = mqtt.connect(context.device.brokerUrl, {
        ca: context.credentials.ca, cert: Buffer.from(rogue.certificatePem), key: Buffer.from(rogue.privateKeyPem),
        clientId: spec.deviceId, reconnectPeriod: 0, connectTimeout: 10_000,
      })
      client.once('connect', () => { client.end(true); resolve() })
      client.once('close', () => resolve())
      client.once('error', () => {})
    })
    await new Promise((resolve) => setTimeout(resolve, 1000))
  }
}

/** A second device with the same certificate, on the same broker: each connection takes the session from the other. */
async function startClone (durationMs: number, context: InjectionContext): Promise<void> {
  const clone = new SimDevice(context.device.spec, context.credentials, new Random(context.device.spec.seed ^ 0xc10e),
    { ...context.environment, stats: new SimStats(1000), reconnectBaseMs: 500, reconnectMaxMs: 2000 }, context.device.brokerIndex)
  clone.silence(false) // it only needs to hold the identity
  void clone.start()
  const timer = setTimeout(() => { void clone.stop(0) }, durationMs)
  context.cleanups.push(async () => { clearTimeout(timer); await clone.stop(0) })
}

function flap (count: number, everyMs: number, context: InjectionContext): void {
  let done = 0
  const timer = setInterval(() => {
    context.device.flap()
    if (++done >= count) clearInterval(timer)
  }, everyMs)
  context.cleanups.push(() => clearInterval(timer))
}
