import type { FastifyInstance } from 'fastify'
import type { AdvisoryListing } from '../../advisories/index.ts'
import { type AdvisoryMatch, type DeviceProduct, remediationOf } from '../../shared/advisory-match.ts'
import type { Alert } from '../../shared/alert-contract.ts'
import { errorSchema } from './schemas.ts'
import type { ApiSource } from './source.ts'

/** What the API needs of the synced advisories (app/advisory-feed.ts). */
export interface AdvisorySource {
  list: () => readonly AdvisoryListing[]
  /** The device's vendor and model from the inventory; undefined when not recorded. */
  productOf: (deviceId: string) => DeviceProduct | undefined
  match: (product: DeviceProduct, firmware: string) => AdvisoryMatch[]
}

export interface Exposure {
  advisory: string, title: string, cves: string[], cvss: number | null, confidence: string, matched: string, remediation: string | null
  /** The SBOM component the advisory reaches the firmware through; null for a match on the firmware itself. */
  component: { name: string, version: string, purl: string | null, fixed: string | null } | null
}
export interface Remediated { advisory: string, resolvedAt: string | null, fw: string | null }

const nullable = (type: string) => ({ type: [type, 'null'] })
export const exposureSchema = {
  type: 'object',
  properties: {
    advisory: { type: 'string' }, title: { type: 'string' }, cves: { type: 'array', items: { type: 'string' } }, cvss: nullable('number'),
    confidence: { type: 'string', enum: ['high', 'low'] }, matched: { type: 'string' }, remediation: nullable('string'),
    component: {
      type: ['object', 'null'],
      properties: { name: { type: 'string' }, version: { type: 'string' }, purl: nullable('string'), fixed: nullable('string') },
    },
  },
} as const
export const remediatedSchema = { type: 'object', properties: { advisory: { type: 'string' }, resolvedAt: nullable('string'), fw: nullable('string') } } as const

const PAGE = 1_000

/** A device's current exposures, from its firmware as last reported. */
export function exposuresOf (advisories: AdvisorySource, deviceId: string, firmware: string | null): Exposure[] {
  const product = advisories.productOf(deviceId)
  if (!product || !firmware) return []
  return advisories.match(product, firmware).map((m) => ({
    advisory: m.advisory.id, title: m.advisory.title, cves: m.advisory.cves, cvss: m.advisory.cvss, confidence: m.confidence, matched: m.matched, remediation: remediationOf(m),
    component: m.component ?? null,
  }))
}

/** Advisories a firmware-vulnerable alert of this device named, resolved since, and no longer matching: remediated. */
export function remediatedOf (alerts: readonly Alert[], exposures: readonly Exposure[]): Remediated[] {
  const current = new Set(exposures.map((e) => e.advisory))
  const seen = new Map<string, Remediated>()
  for (const alert of alerts) {
    if (alert.policy !== 'firmware-vulnerable' || alert.status !== 'resolved' || typeof alert.evidence.advisories !== 'string') continue
    for (const id of alert.evidence.advisories.split(',')) {
      if (!current.has(id) && (seen.get(id)?.resolvedAt ?? '') < (alert.resolvedAt ?? '')) seen.set(id, { advisory: id, resolvedAt: alert.resolvedAt, fw: typeof alert.evidence.fw === 'string' ? alert.evidence.fw : null })
    }
  }
  return [...seen.values()]
}

export function registerAdvisoryRoutes (app: FastifyInstance, source: ApiSource): void {
  app.get('/api/advisories', {
    config: { role: 'viewer' },
    schema: {
      summary: 'Synced advisories (CSAF, OSV) with how many devices each affects now, most devices first',
      response: {
        200: {
          type: 'object',
          properties: {
            items: {
              type: 'array',
              items: {
                type: 'object',
                properties: {
                  id: { type: 'string' }, title: { type: 'string' }, format: { type: 'string' }, cves: { type: 'array', items: { type: 'string' } },
                  cvss: nullable('number'), cvssVector: nullable('string'), remediation: nullable('string'), releasedAt: { type: 'string' }, products: { type: 'integer' }, affectedDevices: { type: 'integer' },
                },
              },
            },
            total: { type: 'integer' },
          },
        },
        400: errorSchema,
      },
    },
  }, async () => {
    const advisories = source.advisories
    if (!advisories) return { items: [], total: 0 }
    const counts = new Map<string, number>()
    let cursor: number | undefined
    do {
      const page = source.fleet.list({}, 'id', 'asc', PAGE, cursor)
      for (const device of page.items) for (const exposure of exposuresOf(advisories, device.id, device.firmware)) counts.set(exposure.advisory, (counts.get(exposure.advisory) ?? 0) + 1)
      cursor = page.next ?? undefined
    } while (cursor !== undefined)
    const items = advisories.list().map((a) => ({
      id: a.id, title: a.title, format: a.format, cves: a.cves, cvss: a.cvss, cvssVector: a.cvssVector ?? null, remediation: a.remediation, releasedAt: a.releasedAt, products: a.products.length, affectedDevices: counts.get(a.id) ?? 0,
    })).sort((a, b) => b.affectedDevices - a.affectedDevices || (b.cvss ?? -1) - (a.cvss ?? -1) || a.id.localeCompare(b.id))
    return { items, total: items.length }
  })
}
