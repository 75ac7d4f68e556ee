import type { FastifyInstance } from 'fastify'
import { DEVICE_HEALTH, DEVICE_IDENTITIES, DEVICE_SORTS, type DeviceFilter, type DeviceSort } from '../../fleet/index.ts'
import { DEVICE_KINDS, type DeviceKind } from '../../shared/ids.ts'
import { decodeCursor, encodeCursor, pageSchema, pagingQuery } from './paging.ts'
import { alertSchema, deviceSummarySchema, errorSchema, idParams, notFound } from './schemas.ts'
import type { ApiSource, DeviceDetail } from './source.ts'
import { exposureSchema, exposuresOf, remediatedOf, remediatedSchema } from './routes-advisories.ts'

interface DeviceQuery extends Omit<DeviceFilter, 'kind'> { kind?: DeviceKind, sort?: DeviceSort, order?: 'asc' | 'desc', limit: number, cursor?: string }

export function registerDeviceRoutes (app: FastifyInstance, source: ApiSource): void {
  app.get<{ Querystring: DeviceQuery }>('/api/devices', {
    config: { role: 'viewer' },
    schema: {
      summary: 'Devices, filtered, sorted and paged (fast at 10k devices: one page is serialised, never the fleet)',
      querystring: {
        type: 'object', additionalProperties: false,
        properties: {
          ...pagingQuery,
          q: { type: 'string', maxLength: 64, description: 'part of the device id or site' },
          kind: { type: 'string', enum: [...DEVICE_KINDS] },
          site: { type: 'string', maxLength: 64 },
          identity: { type: 'string', enum: [...DEVICE_IDENTITIES] },
          health: { type: 'string', enum: [...DEVICE_HEALTH] },
          connected: { type: 'boolean' },
          firmware: { type: 'string', maxLength: 64 },
          certExpiringDays: { type: 'integer', minimum: 0, maximum: 3650 },
          sort: { type: 'string', enum: [...DEVICE_SORTS], default: 'id' },
          order: { type: 'string', enum: ['asc', 'desc'], default: 'asc' },
        },
      },
      response: { 200: pageSchema(deviceSummarySchema), 400: errorSchema },
    },
  }, async (request) => {
    const { limit, cursor, sort, order, ...filter } = request.query
    const result = source.fleet.list(filter, sort, order, limit, decodeCursor(cursor))
    return { items: result.items, total: result.total, next: encodeCursor(result.next) }
  })

  app.get<{ Params: { id: string } }>('/api/devices/:id', {
    config: { role: 'viewer' },
    schema: {
      summary: 'One device: certificate (or LoRaWAN radio), firmware, last seen, rate against its baseline, quarantine, open alerts, recent telemetry',
      params: idParams,
      response: {
        200: {
          type: 'object',
          properties: {
            ...deviceSummarySchema.properties,
            certificate: { type: ['object', 'null'], properties: { serial: { type: 'string' }, notBefore: { type: 'string' }, notAfter: { type: 'string' }, keyAlgorithm: { type: 'string' }, status: { type: 'string' } } },
            radio: {
              type: ['object', 'null'],
              description: 'LoRaWAN: the last uplink\'s gateways (ids, best first, at most 8) and the best one\'s RSSI (dBm) and SNR (dB)',
              properties: { gateways: { type: 'array', items: { type: 'string' } }, rssi: { type: ['number', 'null'] }, snr: { type: ['number', 'null'] }, at: { type: 'string' } },
            },
            rate: { type: ['object', 'null'], properties: { currentPerMinute: { type: 'number' }, baselinePerMinute: { type: ['number', 'null'] } } },
            quarantine: { type: ['object', 'null'], properties: { until: { type: 'string' }, reason: { type: 'string' }, by: { type: 'string' } } },
            alerts: { type: 'array', items: alertSchema },
            telemetry: { type: 'array', items: { type: 'object', properties: { ts: { type: 'number' }, seq: { type: 'number' }, fw: { type: 'string' }, readings: { type: 'object', additionalProperties: { type: 'number' } } } } },
            vendor: { type: ['string', 'null'] },
            model: { type: ['string', 'null'] },
            exposures: { type: 'array', items: exposureSchema },
            remediated: { type: 'array', items: remediatedSchema },
          },
        },
        404: errorSchema,
      },
    },
  }, async (request) => {
    const { id } = request.params
    const summary = source.fleet.summaryOf(id)
    if (!summary) throw notFound('device')
    const rate = source.rateOf(id)
    const alerts = await source.alerts.list({ deviceId: id })
    const product = source.advisories?.productOf(id)
    const exposures = source.advisories ? exposuresOf(source.advisories, id, summary.firmware) : []
    const detail: DeviceDetail = {
      ...summary,
      certificate: source.fleet.certificateOf(id),
      radio: source.fleet.radioOf(id),
      rate: rate ? { currentPerMinute: rate.currentPerMinute, baselinePerMinute: rate.baselinePerMinute } : null,
      quarantine: source.fleet.quarantineOf(id),
      alerts: alerts.filter((alert) => alert.status !== 'resolved'),
      telemetry: source.fleet.telemetryOf(id),
      vendor: product?.vendor ?? null,
      model: product?.model ?? null,
      exposures,
      remediated: remediatedOf(alerts, exposures),
    }
    return detail
  })
}
