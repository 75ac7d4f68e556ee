/**
 * Gives every simulated device an identity from the fleet PKI, reusing the
 * ones already issued so a rerun does not re-issue 10,000 certificates.
 * Incidents that are about the certificate itself (cert-expiry, an expired
 * certificate) get one with the validity they need.
 */
import { existsSync } from 'node:fs'
import type { FleetPki} from '../pki/index.ts';
import { deviceFiles, type InventoryEntry, type IssueRequest } from '../pki/index.ts'
import type { PlannedDevice } from './fleet-plan.ts'
import type { Injection } from './scenario.ts'

const DAY_MS = 86_400_000

type Profile = { kind: 'normal' } | { kind: 'expiring', days: number } | { kind: 'expired' }

function profileOf (injection: Injection | undefined): Profile {
  if (injection?.policy === 'cert-expiry') return { kind: 'expiring', days: injection.expiresInDays }
  if (injection?.policy === 'cert-rejected' && injection.mode === 'expired') return { kind: 'expired' }
  return { kind: 'normal' }
}

function fits (entry: InventoryEntry | undefined, profile: Profile, now: number): boolean {
  if (entry?.identity !== 'certificate') return false
  const notAfter = Date.parse(entry.notAfter)
  switch (profile.kind) {
    case 'normal': return entry.effectiveStatus === 'active' && notAfter > now + 60 * DAY_MS
    case 'expiring': return entry.effectiveStatus === 'active' && notAfter <= now + (profile.days + 1) * DAY_MS
    case 'expired': return entry.effectiveStatus === 'expired'
  }
}

function request (device: PlannedDevice, profile: Profile, now: number): IssueRequest {
  const base = { deviceId: device.deviceId, kind: device.kind, site: device.site }
  switch (profile.kind) {
    case 'normal': return base
    case 'expiring': return { ...base, notBefore: new Date(now - DAY_MS), notAfter: new Date(now + profile.days * DAY_MS) }
    case 'expired': return { ...base, notBefore: new Date(now - 400 * DAY_MS), notAfter: new Date(now - 30 * DAY_MS) }
  }
}

export interface ProvisionResult {
  issued: number
  reused: number
  reissued: number
}

export async function provisionFleet (pki: FleetPki, fleet: PlannedDevice[], injections: Injection[],
  onProgress?: (done: number, total: number) => void): Promise<ProvisionResult> {
  const now = Date.now()
  const byDevice = new Map(injections.map((injection) => [injection.deviceId, injection]))
  const current = new Map(pki.list().filter((e) => e.identity === 'certificate' && e.role === 'device' && e.status === 'active').map((e) => [e.deviceId, e]))
  const toIssue: IssueRequest[] = []
  let reused = 0
  let reissued = 0
  for (const device of fleet) {
    const entry = current.get(device.deviceId)
    const profile = profileOf(byDevice.get(device.deviceId))
    const files = deviceFiles(pki.paths.devicesDir, device.deviceId)
    const onDisk = existsSync(files.cert) && existsSync(files.key)
    if (onDisk && fits(entry, profile, now) && entry!.kind === device.kind && entry!.site === device.site) {
      reused++
      continue
    }
    if (entry) {
      // The old certificate no longer fits (other kind/site, validity, or lost files): retire it.
      await pki.revoke(device.deviceId)
      reissued++
    }
    toIssue.push(request(device, profile, now))
  }
  if (toIssue.length > 0) await pki.issueMany(toIssue, onProgress)
  return { issued: toIssue.length - reissued, reused, reissued }
}
