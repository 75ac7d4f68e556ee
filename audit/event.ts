/**
 * An event as both stores keep it: the caller's detail with the remote
 * address under `from`, so the hash covers where an action came from
 * without a column PostgreSQL's schema does not have.
 */
import { invalidInput } from '../shared/errors.ts'
import type { AuditEvent } from './audit-store.ts'

/** The detail to store; refuses an event a store could not record faithfully. */
export function storedDetail (event: AuditEvent): Record<string, unknown> {
  if (typeof event.actor !== 'string' || event.actor === '') throw invalidInput('actor', 'who acted is required')
  if (typeof event.action !== 'string' || event.action === '') throw invalidInput('action', 'what was done is required')
  if (event.subject !== undefined && event.subject !== null && typeof event.subject !== 'string') throw invalidInput('subject', 'a subject is a string (an alert id, a device id, a sink)')
  const detail = event.detail ?? {}
  if (typeof detail !== 'object' || detail === null || Array.isArray(detail)) throw invalidInput('detail', 'a detail is a JSON object')
  if ('from' in detail) throw invalidInput('detail', 'the key "from" is the event\'s own field; pass the address as `from`')
  if (event.key !== undefined && (typeof event.key !== 'string' || event.key === '' || event.key.length > 200)) throw invalidInput('key', 'an idempotency key is a string of 1–200 characters')
  return event.from ? { ...detail, from: event.from } : { ...detail }
}

/** A stored detail split back into the event's `from` and the caller's detail. */
export function withoutFrom (stored: unknown): { from: string | null, detail: Record<string, unknown> } {
  if (typeof stored !== 'object' || stored === null || Array.isArray(stored)) return { from: null, detail: { stored } }
  const { from, ...detail } = stored as Record<string, unknown>
  return { from: typeof from === 'string' ? from : null, detail }
}
