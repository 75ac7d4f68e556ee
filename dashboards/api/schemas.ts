/** JSON schemas of what the API answers: fastify serializes with them and @fastify/swagger documents them. */
import { PlaceGuardError } from '../../shared/errors.ts'
const nullable = (type: string) => ({ type: [type, 'null'] })

export const alertSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' }, policy: { type: 'string' }, severity: { type: 'string' }, deviceId: { type: 'string' },
    site: nullable('string'), kind: nullable('string'), summary: { type: 'string' }, detectedAt: { type: 'string' },
    status: { type: 'string' }, evidence: { type: 'object', additionalProperties: true }, stride: { type: 'string' },
    attack: nullable('string'), lastSeenAt: { type: 'string' }, occurrences: { type: 'integer' },
    acknowledgedBy: nullable('string'), resolvedAt: nullable('string'), resolution: nullable('string'),
    response: { type: ['object', 'null'], additionalProperties: true },
    comments: { type: 'array', items: { type: 'object', properties: { by: { type: 'string' }, at: { type: 'string' }, text: { type: 'string' } } } },
  },
} as const

export const deviceSummarySchema = {
  type: 'object',
  properties: {
    id: { type: 'string' }, kind: { type: 'string' }, site: { type: 'string' },
    identity: { type: 'string', enum: ['certificate', 'lorawan'], description: 'its own certificate, or a LoRaWAN network server\'s integration speaking for it' },
    integration: { ...nullable('string'), description: 'LoRaWAN: the integration it is registered to' },
    devEui: { ...nullable('string'), description: 'LoRaWAN: its DevEUI, 16 lower-case hex digits' },
    health: { type: 'string' }, connected: { type: 'boolean' },
    firmware: nullable('string'), lastSeenAt: nullable('string'), certNotAfter: nullable('string'), openAlerts: { type: 'integer' }, messages: { type: 'integer' },
  },
} as const

export const errorSchema = {
  type: 'object',
  properties: { statusCode: { type: 'integer' }, code: { type: 'string' }, error: { type: 'string' }, message: { type: 'string' } },
} as const

export const idParams = { type: 'object', required: ['id'], properties: { id: { type: 'string', pattern: '^[a-z0-9:.-]{1,100}$' } } } as const

export function notFound (what: string): PlaceGuardError {
  return new PlaceGuardError('PG_ERR_API_NOT_FOUND', `no ${what} with that id`)
}
