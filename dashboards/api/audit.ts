/**
 * The posture audit, in the spirit of AWS IoT Device Defender's audit:
 * a list of checks over the whole fleet, each pass or fail with the
 * devices behind it, so an operations team can work through it.
 */
import type { Clock } from '../../shared/clock.ts'
import type { ApiSource } from './source.ts'

export interface AuditCheck {
  check: string
  description: string
  status: 'pass' | 'fail'
  count: number
  devices: string[]
}

const DAY_MS = 86_400_000
const LISTED = 100

const AUDITED_POLICIES = ['cert-revoked-attempt', 'identity-clone', 'firmware-vulnerable', 'firmware-outdated'] as const

export async function auditReport (source: ApiSource, clock: Clock): Promise<{ generatedAt: string, devices: number, checks: AuditCheck[], firmware: Array<{ kind: string, version: string, devices: number }> }> {
  const now = clock.now()
  const all = source.fleet.list({}, 'id', 'asc', Number.MAX_SAFE_INTEGER).items
  // The alert book may answer asynchronously (PostgreSQL): read each policy's alerts once, up front.
  const byPolicy = new Map(await Promise.all(AUDITED_POLICIES.map(async (policy) => [policy, await source.alerts.list({ policy })] as const)))
  const alertsOf = (policy: typeof AUDITED_POLICIES[number]) => byPolicy.get(policy)!
  const devicesOf = (policy: typeof AUDITED_POLICIES[number], open = true) => [...new Set(alertsOf(policy).filter((a) => !open || a.status !== 'resolved').map((a) => a.deviceId))].sort()
  const check = (id: string, description: string, devices: string[]): AuditCheck =>
    ({ check: id, description, status: devices.length === 0 ? 'pass' : 'fail', count: devices.length, devices: devices.slice(0, LISTED) })
  const certificate = (id: string) => source.fleet.certificateOf(id)
  const checks = [
    check('certificate-expired', 'device certificates already expired', all.filter((d) => { const c = certificate(d.id); return c !== null && Date.parse(c.notAfter) <= now }).map((d) => d.id)),
    check('certificate-expiring', 'device certificates expiring within 30 days', all.filter((d) => { const c = certificate(d.id); return c !== null && Date.parse(c.notAfter) > now && Date.parse(c.notAfter) - now <= 30 * DAY_MS }).map((d) => d.id)),
    check('revoked-certificate-seen', 'revoked certificates that tried to connect (ever)', devicesOf('cert-revoked-attempt', false)),
    check('shared-certificate', 'identities connected from two places at once (cloned or shared certificates), ever', devicesOf('identity-clone', false)),
    check('firmware-vulnerable', 'devices running firmware with a known vulnerability', devicesOf('firmware-vulnerable')),
    check('firmware-outdated', 'devices running firmware below their kind\'s minimum', devicesOf('firmware-outdated')),
    check('never-seen', 'devices in the inventory that have never reported', all.filter((d) => d.lastSeenAt === null).map((d) => d.id)),
    check('silent', 'devices that stopped reporting', all.filter((d) => d.health === 'silent').map((d) => d.id)),
    check('quarantined', 'devices quarantined now', all.filter((d) => d.health === 'quarantined').map((d) => d.id)),
  ]
  const firmware = [...source.fleet.firmwareCounts()].map(([key, devices]) => {
    const [kind, version] = key.split(' ') as [string, string]
    return { kind, version, devices }
  }).sort((a, b) => a.kind.localeCompare(b.kind) || b.devices - a.devices)
  return { generatedAt: new Date(now).toISOString(), devices: all.length, checks, firmware }
}
