/**
 * Field types the rooms' configuration schemas are built from (each room's
 * config.ts, composed in app/config.ts). Values may arrive as strings, from
 * the environment or flags, so numbers are coerced.
 */
import { z } from 'zod'

/** A TCP port (0: one the system picks). */
export const port = z.coerce.number().int().min(0).max(65535)
/** A positive whole number: a count, a size in bytes, a time in ms. */
export const positive = z.coerce.number().int().positive()
