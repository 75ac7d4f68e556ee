/**
 * Scenario files: which misbehaviour to inject into which devices, when.
 * Every policy id in docs/product.md that a device can cause has an injector;
 * each injected incident becomes one ground-truth line, so detections can
 * be scored.
 */
import { z } from 'zod'
import { PlaceGuardError } from '../shared/errors.ts'
import { DEVICE_KINDS } from '../shared/ids.ts'
import { durationSchema } from '../shared/duration.ts'
import { loadYamlFile } from '../shared/yaml-file.ts'
import type { PlannedDevice } from './fleet-plan.ts'
import { Random } from './random.ts'

const duration = durationSchema
const semverString = z.string().regex(/^\d+\.\d+\.\d+$/, 'must be a version like 1.2.3')

const select = z.strictObject({
  ids: z.array(z.string().regex(/^[a-z0-9-]{1,64}$/)).min(1).optional(),
  kind: z.enum(DEVICE_KINDS).optional(),
  site: z.string().optional(),
  count: z.number().int().positive().optional(),
  fraction: z.number().positive().max(1).optional(),
}).refine((s) => s.ids !== undefined || s.count !== undefined || s.fraction !== undefined, 'give ids, count or fraction')

const base = { select, at: duration.default(0) }

export const incidentSchema = z.discriminatedUnion('policy', [
  z.strictObject({ ...base, policy: z.literal('cert-expiry'), expiresInDays: z.number().positive().default(5) }),
  z.strictObject({ ...base, policy: z.literal('cert-rejected'), mode: z.enum(['foreign-ca', 'self-signed', 'expired']).default('foreign-ca'), attempts: z.number().int().positive().default(3) }),
  z.strictObject({ ...base, policy: z.literal('cert-revoked-attempt') }),
  z.strictObject({ ...base, policy: z.literal('firmware-outdated'), fw: semverString }),
  z.strictObject({ ...base, policy: z.literal('firmware-vulnerable'), fw: semverString }),
  z.strictObject({ ...base, policy: z.literal('firmware-downgrade'), fw: semverString }),
  // `rate`: ratePerSec on top of its schedule for duration; `flood`: count messages back to back, at once.
  z.strictObject({ ...base, policy: z.literal('rate-burst'), mode: z.enum(['rate', 'flood']).default('rate'), ratePerSec: z.number().positive().default(10), duration: duration.default(30_000), count: z.number().int().positive().default(300) }),
  // For good, or (`duration`) a network outage: the link is down that long, and the readings it kept are sent on its return.
  z.strictObject({ ...base, policy: z.literal('device-silent'), disconnect: z.boolean().default(false), duration: duration.optional() }),
  z.strictObject({ ...base, policy: z.literal('acl-violation'), mode: z.enum(['foreign-publish', 'wildcard-subscribe']).default('foreign-publish') }),
  z.strictObject({ ...base, policy: z.literal('identity-clone'), duration: duration.default(20_000) }),
  z.strictObject({ ...base, policy: z.literal('connection-flapping'), count: z.number().int().min(2).default(6), every: duration.default(2_000) }),
  z.strictObject({ ...base, policy: z.literal('value-implausible'), mode: z.enum(['jump', 'backwards', 'range']).optional() }),
  z.strictObject({ ...base, policy: z.literal('payload-invalid'), mode: z.enum(['not-json', 'wrong-type', 'missing-field', 'malformed-packet']).default('not-json'), count: z.number().int().positive().default(3) }),
  z.strictObject({ ...base, policy: z.literal('clock-skew'), offset: duration.default(15 * 60_000), direction: z.enum(['ahead', 'behind']).default('ahead') }),
  z.strictObject({ ...base, policy: z.literal('replay'), count: z.number().int().positive().default(3) }),
  // LoRaWAN (sim --network): what a network server's integration shows of a device behind it.
  // `unregistered`: a DevEUI no one registered appears; `other-integration`: one registered to another integration.
  z.strictObject({ ...base, policy: z.literal('lorawan-unknown-device'), mode: z.enum(['unregistered', 'other-integration']).default('unregistered') }),
  // `reset`: the counter restarts at 0 with no join; `replay`: one uplink carries the counter sent `back` frames ago.
  z.strictObject({ ...base, policy: z.literal('lorawan-fcnt-reset'), mode: z.enum(['reset', 'replay']).default('reset'), back: z.number().int().positive().max(32).default(5) }),
  z.strictObject({ ...base, policy: z.literal('lorawan-join-flood'), count: z.number().int().min(2).max(10_000).default(20), duration: duration.default(10_000) }),
  // `unknown-gateway`: heard only through a gateway never seen before; `other-site`: only through another site's gateways.
  z.strictObject({ ...base, policy: z.literal('lorawan-gateway-shift'), mode: z.enum(['unknown-gateway', 'other-site']).default('unknown-gateway') }),
  z.strictObject({ ...base, policy: z.literal('lorawan-signal-shift'), rssiDrop: z.number().positive().max(60).default(25), snrDrop: z.number().positive().max(30).default(10) }),
])

/** Incidents only a device behind a LoRaWAN network server can cause (sim --network). */
export const LORAWAN_POLICIES = ['lorawan-unknown-device', 'lorawan-fcnt-reset', 'lorawan-join-flood', 'lorawan-gateway-shift', 'lorawan-signal-shift'] as const
/**
 * What a LoRaWAN fleet can be made to do: its own incidents, and those of
 * the device policies that apply to it too (it has no certificate, no MQTT
 * session and no payload of its own to corrupt).
 */
export const LORAWAN_SIM_POLICIES: readonly string[] = [...LORAWAN_POLICIES, 'device-silent', 'rate-burst', 'firmware-outdated', 'firmware-vulnerable', 'firmware-downgrade']

/** Refuses, naming the incident, a scenario whose incidents the fleet cannot enact. */
export function assertScenarioFits (scenario: Scenario, fleet: 'devices' | 'lorawan'): void {
  scenario.incidents.forEach((incident, index) => {
    const lorawanOnly = (LORAWAN_POLICIES as readonly string[]).includes(incident.policy)
    if (fleet === 'devices' && lorawanOnly) {
      throw new PlaceGuardError('PG_ERR_SCENARIO_INVALID', `incidents.${index}.policy: ${incident.policy} needs a LoRaWAN fleet`, { field: `incidents.${index}.policy`, hint: 'run sim --network chirpstack|tts' })
    }
    if (fleet === 'lorawan' && !LORAWAN_SIM_POLICIES.includes(incident.policy)) {
      throw new PlaceGuardError('PG_ERR_SCENARIO_INVALID', `incidents.${index}.policy: ${incident.policy} is not something a device behind a network server can do`, {
        field: `incidents.${index}.policy`, hint: `a LoRaWAN fleet takes ${LORAWAN_SIM_POLICIES.join(', ')}`,
      })
    }
  })
}

/** A site with only a few devices of a kind, added to the planned fleet: detection must hold where there is no crowd. */
const smallSite = z.strictObject({ site: z.string().regex(/^[a-z0-9-]{1,40}$/), kind: z.enum(DEVICE_KINDS), devices: z.number().int().min(1).max(50) })

export const scenarioSchema = z.strictObject({
  name: z.string().min(1),
  description: z.string().optional(),
  smallSites: z.array(smallSite).default([]),
  incidents: z.array(incidentSchema).default([]),
})

export type Incident = z.infer<typeof incidentSchema>
export type Scenario = z.infer<typeof scenarioSchema>
export type PolicyId = Incident['policy']

/** One incident on one device: what the simulator does and what the truth file says. */
export type Injection = Incident & { deviceId: string }

export interface TruthRecord {
  deviceId: string
  policy: PolicyId
  startedAt: string
  /** LoRaWAN incidents: the DevEUI and the integration that published it, since an unknown device has no device id at PlaceGuard. */
  devEui?: string
  integrationId?: string
}

/** Reads and validates a scenario file; errors name the file, the line and the field. */
export function loadScenario (file: string): Scenario {
  return loadYamlFile(file, scenarioSchema, 'PG_ERR_SCENARIO_INVALID', 'scenario')
}

/**
 * Chooses the devices of each incident, deterministically for a seed. A
 * device takes part in at most one incident, so every alert can be scored
 * against exactly one truth line; devices in no incident are the clean
 * control group.
 */
export function planInjections (scenario: Scenario, fleet: PlannedDevice[], seed: number): Injection[] {
  const rng = new Random(seed ^ 0x5ca1ab1e)
  const taken = new Set<string>()
  const byId = new Map(fleet.map((device) => [device.deviceId, device]))
  const injections: Injection[] = []
  scenario.incidents.forEach((incident, index) => {
    const where = `incidents.${index}.select`
    let chosen: string[]
    if (incident.select.ids) {
      for (const id of incident.select.ids) {
        if (!byId.has(id)) throw new PlaceGuardError('PG_ERR_SCENARIO_INVALID', `${where}.ids: "${id}" is not in this fleet`, { field: `${where}.ids` })
        if (taken.has(id)) throw new PlaceGuardError('PG_ERR_SCENARIO_INVALID', `${where}.ids: "${id}" is already in another incident`, { field: `${where}.ids` })
      }
      chosen = incident.select.ids
    } else {
      const candidates = fleet.filter((d) => !taken.has(d.deviceId) &&
        (incident.select.kind === undefined || d.kind === incident.select.kind) &&
        (incident.select.site === undefined || d.site === incident.select.site))
      const wanted = incident.select.count ?? Math.max(1, Math.round(incident.select.fraction! * candidates.length))
      if (candidates.length < wanted) {
        throw new PlaceGuardError('PG_ERR_SCENARIO_INVALID', `${where}: wants ${wanted} devices, only ${candidates.length} free ones match`, { field: where, hint: 'simulate more devices, or select fewer' })
      }
      chosen = []
      const pool = [...candidates]
      for (let i = 0; i < wanted; i++) chosen.push(pool.splice(Math.floor(rng.next() * pool.length), 1)[0]!.deviceId)
    }
    for (const deviceId of chosen) {
      taken.add(deviceId)
      injections.push({ ...incident, deviceId })
    }
  })
  return injections
}
