/**
 * Gives a simulated network server its integration certificate and
 * registers the devices behind it, through the fleet PKI's issue-16 API
 * (`issueIntegration`, `addLorawanDevice`). Everything the simulator asks
 * of that API is in this file, so a change there is a change here only.
 *
 * A rerun reuses the integration certificate when it is still the active
 * one for that id and network, and leaves registrations that already
 * exist as they are.
 */
import { existsSync, readFileSync } from 'node:fs'
import { X509Certificate } from 'node:crypto'
import { deviceFiles, type FleetPki, type IssuedDevice } from '../pki/index.ts'
import { invalidInput, PlaceGuardError } from '../shared/errors.ts'
import type { LorawanNetwork } from '../shared/lorawan.ts'

export interface IntegrationRequest { integrationId: string, network: LorawanNetwork, site: string, days?: number }
export interface LorawanDeviceRequest { deviceId: string, kind: string, site: string, devEui: string, integrationId: string }

/** The fleet PKI's issue-16 additions, as the simulator uses them (`lorawanDevices` as the collector reads the registry). */
interface LorawanPki {
  issueIntegration: (request: IntegrationRequest) => Promise<IssuedDevice>
  addLorawanDevice: (request: LorawanDeviceRequest) => unknown
  lorawanDevices?: () => LorawanDeviceRequest[]
}

export interface LorawanProvisionPlan {
  integration: IntegrationRequest
  /** Integrations that must exist besides ours, for devices registered elsewhere (lorawan-unknown-device); never connected. */
  peers: IntegrationRequest[]
  /** Registrations, each to `integration` or a peer. */
  devices: LorawanDeviceRequest[]
  /**
   * Where the PKI cannot issue integrations: connect with a device
   * certificate of the integration's id and register nothing. Only a
   * broker without topic rules (mosquitto, as the benchmark's baseline)
   * accepts that; PlaceGuard's broker refuses it, as it should.
   */
  standIn?: boolean
}

export interface LorawanProvision {
  credentials: { ca: Buffer, cert: Buffer, key: Buffer }
  issued: number
  reused: number
  registered: number
  /** The integration connects with a device certificate (see `standIn`). */
  standIn: boolean
}

export const integrationUri = (network: LorawanNetwork, integrationId: string): string => `urn:placeguard:integration:${network}:${integrationId}`

export async function provisionLorawan (pki: FleetPki, plan: LorawanProvisionPlan): Promise<LorawanProvision> {
  const api = pki as FleetPki & Partial<LorawanPki>
  const ca = readFileSync(pki.paths.caCert)
  if (typeof api.issueIntegration !== 'function' || typeof api.addLorawanDevice !== 'function') {
    if (!plan.standIn) {
      throw invalidInput('--network', 'this fleet PKI cannot issue integration certificates', 'it needs `pki issue <id> --role integration` (issue 16)')
    }
    return { ...await standIn(pki, plan.integration), standIn: true, registered: 0 }
  }
  let issued = 0
  let reused = 0
  for (const request of [plan.integration, ...plan.peers]) {
    if (current(pki, request)) {
      reused++
      continue
    }
    if (pki.list().some((entry) => entry.deviceId === request.integrationId && entry.effectiveStatus === 'active')) await pki.revoke(request.integrationId)
    await api.issueIntegration(request)
    issued++
  }
  let registered = 0
  const existing = new Set((api.lorawanDevices?.() ?? []).map((d) => `${d.devEui.toLowerCase()} ${d.integrationId} ${d.deviceId}`))
  for (const device of plan.devices) {
    if (existing.has(`${device.devEui} ${device.integrationId} ${device.deviceId}`)) continue
    try {
      await api.addLorawanDevice(device)
      registered++
    } catch (error) {
      // A rerun finds its devices registered already; anything else is a real refusal.
      if (!(error instanceof PlaceGuardError) || !/already|duplicate/i.test(error.message)) throw error
    }
  }
  const files = deviceFiles(pki.paths.devicesDir, plan.integration.integrationId)
  return { credentials: { ca, cert: readFileSync(files.cert), key: readFileSync(files.key) }, issued, reused, registered, standIn: false }
}

/** The integration's certificate on disk is the active one for this id and network, with a day or more left. */
function current (pki: FleetPki, request: IntegrationRequest): boolean {
  const files = deviceFiles(pki.paths.devicesDir, request.integrationId)
  if (!existsSync(files.cert) || !existsSync(files.key)) return false
  const certificate = new X509Certificate(readFileSync(files.cert))
  if (!certificate.subjectAltName?.split(', ').includes(`URI:${integrationUri(request.network, request.integrationId)}`)) return false
  if (Date.parse(certificate.validTo) < Date.now() + 86_400_000) return false
  const fingerprint = certificate.fingerprint256.replaceAll(':', '').toLowerCase()
  return pki.list().some((entry) => entry.fingerprint === fingerprint && entry.effectiveStatus === 'active')
}

async function standIn (pki: FleetPki, request: IntegrationRequest): Promise<Omit<LorawanProvision, 'standIn' | 'registered'>> {
  const files = deviceFiles(pki.paths.devicesDir, request.integrationId)
  const active = pki.list().find((entry) => entry.deviceId === request.integrationId && entry.role === 'device' && entry.effectiveStatus === 'active')
  const onDisk = existsSync(files.cert) && existsSync(files.key)
  const reuse = active !== undefined && onDisk
  if (!reuse) {
    if (active) await pki.revoke(request.integrationId)
    await pki.issue({ deviceId: request.integrationId, kind: 'energy', site: request.site })
  }
  return { credentials: { ca: readFileSync(pki.paths.caCert), cert: readFileSync(files.cert), key: readFileSync(files.key) }, issued: reuse ? 0 : 1, reused: reuse ? 1 : 0 }
}
