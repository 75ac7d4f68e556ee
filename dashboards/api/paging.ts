/**
 * Lists answer `{ items, total, next }` (docs/product.md); `next` is an opaque
 * cursor for the following page, null on the last one.
 */
import { PlaceGuardError } from '../../shared/errors.ts'

export const pagingQuery = {
  limit: { type: 'integer', minimum: 1, maximum: 500, default: 100 },
  cursor: { type: 'string', maxLength: 64 },
} as const

export const pageSchema = (item: object) => ({
  type: 'object',
  properties: { items: { type: 'array', items: item }, total: { type: 'integer' }, next: { type: ['string', 'null'] } },
}) as const

export function encodeCursor (offset: number | null): string | null {
  return offset === null ? null : Buffer.from(JSON.stringify({ o: offset })).toString('base64url')
}

export function decodeCursor (cursor: string | undefined): number {
  if (!cursor) return 0
  try {
    const { o } = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { o: unknown }
    if (Number.isInteger(o) && (o as number) >= 0) return o as number
  } catch {
    // not base64url JSON: refused below like any other foreign cursor
  }
  throw new PlaceGuardError('PG_ERR_INPUT_INVALID', 'cursor: not a cursor this API gave out', { field: 'cursor' })
}

export function page<T> (all: T[], limit: number, cursor: string | undefined): { items: T[], total: number, next: string | null } {
  const offset = decodeCursor(cursor)
  return { items: all.slice(offset, offset + limit), total: all.length, next: encodeCursor(offset + limit < all.length ? offset + limit : null) }
}
