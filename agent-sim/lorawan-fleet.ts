/**
 * A LoRaWAN fleet as a network server holds it: applications per kind
 * (a council groups its sensors that way), devices with DevEUIs and
 * activations, gateways per site. Pure: the simulator publishes what this
 * builds, the benchmark replays it, the tests read it.
 */
import type { LorawanNetwork } from '../shared/lorawan.ts'
import { DEVICE_KINDS, type DeviceKind } from '../shared/ids.ts'
import { type KindMix, planFleet, type PlannedDevice, planSmallSites } from './fleet-plan.ts'
import { type LorawanIdentity, newUuid } from './lorawan-events.ts'
import { LorawanSimDevice } from './lorawan-device.ts'
import { hex, planGateways, type SimGateway } from './lorawan-radio.ts'
import { Random } from './random.ts'

export interface LorawanFleetOptions {
  network: LorawanNetwork
  devices: number
  mix: KindMix
  sites: string[]
  seed: number
  /** The Things Stack's tenant in its topics (`<app>@<tenant>`); default `council`. */
  tenantId?: string
  smallSites?: Array<{ site: string, kind: DeviceKind, devices: number }>
}

export interface LorawanFleet {
  network: LorawanNetwork
  devices: LorawanSimDevice[]
  gateways: Map<string, SimGateway[]>
}

/** Device ids carry the network (`chirpstack-flood-00042`): two simulated network servers can share a registry. */
export const lorawanDeviceId = (network: LorawanNetwork, plannedId: string): string => `${network}-${plannedId}`

/**
 * A DevEUI follows from the device id alone, under an IEEE OUI, so a rerun
 * with another seed finds its registrations where it left them.
 */
export function devEuiOf (deviceId: string): string {
  return `70b3d5${hex(new Random(0x10ca).fork(deviceId), 10)}`
}

export function buildLorawanFleet (options: LorawanFleetOptions): LorawanFleet {
  const { network, seed } = options
  const planned: PlannedDevice[] = [...planFleet(options.devices, options.mix, options.sites, seed), ...planSmallSites(options.smallSites ?? [], seed)]
    .map((device) => ({ ...device, deviceId: lorawanDeviceId(network, device.deviceId) }))
  const rng = new Random(seed ^ 0x10ea)
  const sites = [...new Set([...options.sites, ...planned.map((device) => device.site)])]
  const gateways = planGateways(sites, network, rng.fork('gateways'))
  const tenant = network === 'chirpstack' ? { tenantId: newUuid(rng), tenantName: 'Council' } : { tenantId: options.tenantId ?? 'council', tenantName: 'Council' }
  const applications = new Map(DEVICE_KINDS.map((kind) => [kind, {
    applicationId: network === 'chirpstack' ? newUuid(rng) : `${kind}-sensors`,
    applicationName: `${kind} sensors`,
    deviceProfileId: newUuid(rng),
    deviceProfileName: `${kind} sensor, EU868, class A`,
  }]))
  const joinEui = hex(rng, 16)
  const devices = planned.map((spec) => {
    const own = new Random(spec.seed ^ 0x10a)
    const identity: LorawanIdentity = {
      network, deviceId: spec.deviceId, devEui: devEuiOf(spec.deviceId), joinEui, ...tenant, ...applications.get(spec.kind)!,
      tags: { site: spec.site, kind: spec.kind },
    }
    // A quarter of the fleet is ABP (no joins, counters kept across resets); half of those count in 16 bits.
    const abp = own.next() < 0.25
    return new LorawanSimDevice(spec, identity, gateways.get(spec.site)!, own, { activation: abp ? 'abp' : 'otaa', counterBits: abp && own.next() < 0.5 ? 16 : 32 })
  })
  return { network, devices, gateways }
}
