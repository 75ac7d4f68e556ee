/**
 * The db room's key of the configuration: `databaseUrl`
 * (PLACEGUARD_DATABASE_URL), composed in app/config.ts. Absent: alerts stay
 * in the embedded SQLite files of the data directory, as for one process.
 */
import { z } from 'zod'

// A password with / # ? or @ unencoded breaks the URL (pg would then read a
// wrong host or user): refuse it here, by name. The messages are fixed text,
// so the URL, and its password, never reach them.
export const databaseUrlSchema = z.string().regex(/^postgres(ql)?:\/\/\S+$/, 'must be a postgres:// or postgresql:// URL')
  .refine((url) => URL.canParse(url), 'is not a valid URL: percent-encode / # ? @ in the password (or use a hex one: openssl rand -hex 32)')
  .optional()
  .describe('PostgreSQL of the collector group (shared alerts; migrated at start); absent: alerts in SQLite in the data directory')
