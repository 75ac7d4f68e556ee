/**
 * Gives a simulated network server its integration certificate and
 * registers the devices behind it, through the fleet PKI
 * (`issueIntegration`, `addLorawanDevice`). Everything the simulator asks
 * of the PKI for LoRaWAN is in this file.
 *
 * A rerun reuses the integration certificate when it is still the active
 * one for that id and network, and leaves registrations that already
 * exist as they are.
 */
import { existsSync, readFileSync } from 'node:fs'
import { X509Certificate } from 'node:crypto'
import { deviceFiles, type FleetPki } from '../pki/index.ts'
import { PlaceGuardError } from '../shared/errors.ts'
import type { LorawanNetwork } from '../shared/lorawan.ts'

export interface IntegrationRequest { integrationId: string, network: LorawanNetwork, site: string, days?: number }
export interface LorawanDeviceRequest { deviceId: string, kind: string, site: string, devEui: string, integrationId: string }

export interface LorawanProvisionPlan {
  integration: IntegrationRequest
  /** Integrations that must exist besides ours, for devices registered elsewhere (lorawan-unknown-device); never connected. */
  peers: IntegrationRequest[]
  /** Registrations, each to `integration` or a peer. */
  devices: LorawanDeviceRequest[]
}

export interface LorawanProvision {
  credentials: { ca: Buffer, cert: Buffer, key: Buffer }
  issued: number
  reused: number
  registered: number
}

export const integrationUri = (network: LorawanNetwork, integrationId: string): string => `urn:placeguard:integration:${network}:${integrationId}`

export async function provisionLorawan (pki: FleetPki, plan: LorawanProvisionPlan): Promise<LorawanProvision> {
  const ca = readFileSync(pki.paths.caCert)
  let issued = 0
  let reused = 0
  for (const request of [plan.integration, ...plan.peers]) {
    if (current(pki, request)) {
      reused++
      continue
    }
    if (pki.list().some((entry) => entry.deviceId === request.integrationId && entry.effectiveStatus === 'active')) await pki.revoke(request.integrationId)
    await pki.issueIntegration(request)
    issued++
  }
  let registered = 0
  const existing = new Set(pki.lorawanDevices().map((d) => `${d.devEui.toLowerCase()} ${d.integrationId} ${d.deviceId}`))
  for (const device of plan.devices) {
    if (existing.has(`${device.devEui} ${device.integrationId} ${device.deviceId}`)) continue
    try {
      await pki.addLorawanDevice(device)
      registered++
    } catch (error) {
      // A rerun finds its devices registered already; anything else is a real refusal.
      if (!(error instanceof PlaceGuardError) || !/already|duplicate/i.test(error.message)) throw error
    }
  }
  const files = deviceFiles(pki.paths.devicesDir, plan.integration.integrationId)
  return { credentials: { ca, cert: readFileSync(files.cert), key: readFileSync(files.key) }, issued, reused, registered }
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
