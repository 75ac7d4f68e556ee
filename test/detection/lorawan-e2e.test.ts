/**
 * Devices behind a LoRaWAN network server, end to end (issue 16): the
 * simulator publishes a ChirpStack fleet's events through one integration
 * certificate into the real broker, the collector service decodes them
 * and detection raises its alerts. Every incident of lorawan-mix.yaml must
 * be alerted under its policy for its device, and no device outside the
 * ground truth may be alerted at all. Then an integration publishing
 * where it may not is refused by the broker and alerted by the collector.
 *
 * The rules are the shipped code and the policy files the shipped ones:
 * only time parameters are scaled down (a learning period of minutes to
 * seconds), because the fleet here sends every 500 ms instead of every
 * 10–15 minutes. No threshold or count is changed.
 */
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseDocument, type YAMLMap, type YAMLSeq } from 'yaml'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildLorawanFleet, DEFAULT_MIX, loadScenario, planInjections, provisionLorawan, provisionPlan, runLorawanSimulation, type TruthRecord } from '../../agent-sim/index.ts'
import { loadConfig } from '../../app/config.ts'
import { createCollectorService } from '../../app/collector-service.ts'
import { SHIPPED_POLICIES_DIR } from '../../detection/detection.ts'
import { unknownDeviceKey } from '../../policies/rules/lorawan-unknown-device.ts'
import type { Alert } from '../../shared/alert-contract.ts'
import { createLogger } from '../../shared/logger.ts'
import { type RunningBroker, startBroker, waitFor } from '../helpers/broker.ts'
import { createTestFleet, type TestFleet } from '../helpers/fleet.ts'
import { mosquittoPub } from '../helpers/mosquitto-clients.ts'

const NETWORK = 'chirpstack'
const INTEGRATION = 'cs-council'
const SITES = ['riverside', 'northgate', 'harbour']
const FLEET = { network: NETWORK, devices: 36, mix: DEFAULT_MIX, sites: SITES, seed: 16 } as const
const INTERVAL_MS = 500

/**
 * Time parameters of the shipped policies, scaled to a fleet sending every
 * 500 ms: lorawan-gateway-shift learns for 20 uplinks *and* 10 minutes,
 * and 10 minutes here would be 1,200 uplinks; a gateway is "up" if heard
 * within 30 minutes, here a few seconds (every gateway hears a device
 * several times a second).
 */
const SCALED: Record<string, Record<string, string>> = {
  'lorawan-gateway-shift': { learningPeriod: '5s', gatewayAliveWindow: '5s' },
}

/** A copy of the shipped policy files with SCALED applied; refuses to touch anything that is not a duration. */
function scaledPolicies (dir: string): void {
  cpSync(SHIPPED_POLICIES_DIR, dir, { recursive: true, filter: (source) => !source.endsWith('.ts') && !source.includes('/rules') })
  const file = join(dir, 'lorawan.yaml')
  const doc = parseDocument(readFileSync(file, 'utf8'))
  for (const item of (doc.get('policies') as YAMLSeq<YAMLMap>).items) {
    for (const [param, value] of Object.entries(SCALED[String(item.get('id'))] ?? {})) {
      expect(String(item.getIn(['params', param])), `${String(item.get('id'))}.${param} is a duration`).toMatch(/^\d+(ms|s|m|h|d)$/)
      item.setIn(['params', param], value)
    }
  }
  writeFileSync(file, doc.toString())
}

/**
 * lorawan-mix.yaml's incidents, unchanged but for when: one a second from
 * 14 s, once every device has sent its 20+ learning uplinks (and each
 * gateway has its 12 baseline readings of it).
 */
function scenarioFile (dir: string): string {
  const doc = parseDocument(readFileSync(join(import.meta.dirname, '..', '..', 'agent-sim', 'scenarios', 'lorawan-mix.yaml'), 'utf8'))
  ;(doc.get('incidents') as YAMLSeq<YAMLMap>).items.forEach((incident, i) => incident.set('at', `${14 + i}s`))
  const file = join(dir, 'lorawan-mix-scaled.yaml')
  writeFileSync(file, doc.toString())
  return file
}

let fleet: TestFleet
let broker: RunningBroker
let policiesDir: string
let service: ReturnType<typeof createCollectorService>

beforeAll(async () => {
  fleet = await createTestFleet()
  broker = await startBroker(fleet)
  policiesDir = mkdtempSync(join(tmpdir(), 'placeguard-lorawan-policies-'))
  scaledPolicies(policiesDir)
  // Registered before the collector starts, as an operator would: every device but the scenario's unknown ones.
  const scenario = loadScenario(scenarioFile(fleet.dataDir))
  const planned = buildLorawanFleet(FLEET)
  const own = { integrationId: INTEGRATION, network: NETWORK, site: SITES[0]! } as const
  await provisionLorawan(fleet.pki, provisionPlan(planned, planInjections(scenario, planned.devices.map((d) => d.spec), FLEET.seed), own, { ...own, integrationId: `${INTEGRATION}-peer` }))
  const config = loadConfig({ env: { PLACEGUARD_POLICIES_DIR: policiesDir }, flags: { dataDir: fleet.dataDir } })
  service = createCollectorService(config, broker.url, createLogger({ level: 'silent' }))
  await service.start()
})

afterAll(async () => {
  await service?.stop()
  await broker?.close()
  fleet?.cleanup()
  if (policiesDir) rmSync(policiesDir, { recursive: true, force: true })
})

/** The alert key an incident's alert has: the device's id, or (integration, DevEUI) for a device PlaceGuard does not know as this integration's. */
const keyOf = (record: TruthRecord): string => record.policy === 'lorawan-unknown-device' ? unknownDeviceKey(record.integrationId!, record.devEui!) : record.deviceId

describe('a ChirpStack fleet through one integration, with lorawan-mix\'s incidents', () => {
  it('alerts every incident under its policy for its device, and nothing on the clean devices', async () => {
    const truthFile = join(fleet.dataDir, 'truth.jsonl')
    const stop = new AbortController()
    const alertsAtStop: Promise<Alert[]>[] = []
    const expected = loadScenario(scenarioFile(fleet.dataDir)).incidents.length
    const truth = (): TruthRecord[] => !existsSync(truthFile) ? [] : readFileSync(truthFile, 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line) as TruthRecord)
    const run = runLorawanSimulation({
      dataDir: fleet.dataDir, brokerUrl: broker.url, ...FLEET, integrationId: INTEGRATION, intervalMs: INTERVAL_MS, durationMs: 0,
      scenario: loadScenario(scenarioFile(fleet.dataDir)), truthFile, signal: stop.signal,
      // The list as the fleet stops: once it is silent, device-silent would rightly fire on every device.
      onPhase: (phase) => { if (phase === 'stop') alertsAtStop.push(Promise.resolve(service.detection.alerts.list())) },
    })
    try {
      const alerted = async (): Promise<boolean> => {
        const records = truth()
        if (records.length < expected) return false
        const alerts = await service.detection.alerts.list()
        return records.every((r) => alerts.some((a) => a.policy === r.policy && a.deviceId === keyOf(r)))
      }
      // Every incident alerted, then the clean fleet judged for 20 s past the last incident (its shifted devices relearned by then).
      await waitFor(alerted, 60_000, 'an alert for every incident').catch(async (error: Error) => {
        throw new Error(`${error.message}; truth: ${JSON.stringify(truth().map((r) => [r.policy, keyOf(r)]))}; alerts: ${JSON.stringify((await service.detection.alerts.list()).map((a) => [a.policy, a.deviceId]))}\n`)
      })
      await waitFor(() => Date.parse(truth().at(-1)!.startedAt) + 20_000 < Date.now(), 30_000, 'the clean fleet running 20 s past the last incident')
    } finally {
      stop.abort()
    }
    const summary = await run
    const alerts = await alertsAtStop[0]!
    const records = truth()
    expect(summary).toMatchObject({ devices: 36, failed: 0, injected: expected })
    expect(records).toHaveLength(expected)

    for (const record of records) {
      expect(alerts.find((a) => a.policy === record.policy && a.deviceId === keyOf(record)), `${record.policy} on ${keyOf(record)}`).toBeDefined()
    }
    const other = records.find((r) => r.policy === 'lorawan-unknown-device' && alerts.some((a) => a.deviceId === keyOf(r) && a.evidence.registeredTo !== null))
    expect(alerts.find((a) => a.deviceId === keyOf(other!))).toMatchObject({ severity: 'critical', evidence: { registeredTo: `${INTEGRATION}-peer` } })

    // Nothing at all on a device outside the ground truth: no silence, replay, burst, skew or shift on the clean fleet.
    const injected = new Set(records.flatMap((r) => [r.deviceId, keyOf(r)]))
    const strays = alerts.filter((a) => !injected.has(a.deviceId))
    expect(strays.map((a) => `${a.policy} ${a.deviceId}: ${a.summary}`)).toEqual([])
    // What else fell on the injected devices (a side effect of their incident), for the record.
    const side = alerts.filter((a) => injected.has(a.deviceId) && !records.some((r) => r.policy === a.policy && keyOf(r) === a.deviceId))
    process.stdout.write(`${summary.uplinks} uplinks, ${summary.joins} joins in ${summary.runMs} ms; ${alerts.length} alerts; side alerts on injected devices: ${JSON.stringify(side.map((a) => [a.policy, a.deviceId]))}\n`)
  }, 120_000)
})

describe('an integration publishing where it may not', () => {
  it('is refused on a device\'s topic and on the other network\'s, and acl-violation opens for it through the collector', async () => {
    await fleet.pki.issueIntegration({ integrationId: 'cs-rogue', network: 'chirpstack', site: 'riverside' })
    const tls = { cafile: fleet.paths.caCert, ...fleet.device('cs-rogue') }
    const topics = ['places/riverside/flood/chirpstack-flood-00001/telemetry', 'v3/flood-sensors@council/devices/gauge-1/up']
    for (const [i, topic] of topics.entries()) {
      expect((await mosquittoPub(broker.port, tls, 'cs-rogue', topic, '{"level_cm":1}')).code, topic).not.toBe(0)
      await broker.waitForEvent((e) => e.type === 'acl-denied' && e.deviceId === 'cs-rogue' && e.topic === topic)
      const alert = async () => (await service.detection.alerts.list({ policy: 'acl-violation', deviceId: 'cs-rogue' }))[0]
      await waitFor(async () => ((await alert())?.occurrences ?? 0) >= i + 1, 10_000, `acl-violation for cs-rogue after ${topic}`)
      expect(await alert()).toMatchObject({ status: 'open', severity: 'high' })
    }
  }, 30_000)
})
