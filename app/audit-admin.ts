/**
 * The operator's side of the audit trail: `placeguard audit-trail verify`
 * checks the trail the collectors write — the group's PostgreSQL with a
 * database URL, else `<data-dir>/audit.db` — without writing to it; and
 * the commands that change the fleet (`pki issue`, `devices add`,
 * `quarantine add`…) record themselves in that same trail.
 */
import { existsSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { type AsyncAuditStore, type AuditEntry, type AuditEvent, type AuditPage, type AuditQuery, type AuditStore, type AuditVerdict, PgAuditStore, SqliteAuditStore } from '../audit/index.ts'
import { createDatabasePool, redactDatabaseUrl } from '../db/index.ts'
import { type AnyOutboxStore, auditDelivery, PgOutboxStore, SqliteOutboxStore, takesAuditTrail } from '../delivery/index.ts'
import { PlaceGuardError } from '../shared/errors.ts'
import { createLogger } from '../shared/logger.ts'
import type { Config } from './config.ts'

export interface AuditTrailCheck {
  /** Where the trail was read: the file, or the database URL without its password. */
  trail: string
  verdict: AuditVerdict
}

export async function verifyAuditTrail (config: Pick<Config, 'dataDir' | 'databaseUrl'>): Promise<AuditTrailCheck> {
  if (config.databaseUrl) {
    const trail = redactDatabaseUrl(config.databaseUrl)
    const pool = createDatabasePool({ url: config.databaseUrl, applicationName: 'placeguard-audit-verify', logger: createLogger({ level: 'silent' }), max: 1 })
    try {
      return { trail, verdict: await new PgAuditStore({ pool }).verify() }
    } catch (error) {
      throw new PlaceGuardError('PG_ERR_DB_UNREACHABLE', `cannot read the audit trail in ${trail}: ${(error as Error).message}`, { field: 'databaseUrl', cause: error })
    } finally {
      await pool.end()
    }
  }
  const path = join(config.dataDir, 'audit.db')
  // No file: no operator has acted through this data directory's API yet.
  if (!existsSync(path)) return { trail: path, verdict: { intact: true, entries: 0 } }
  const store = new SqliteAuditStore({ path, readOnly: true })
  try {
    return { trail: path, verdict: store.verify() }
  } finally {
    store.close()
  }
}

/** A page of the trail the collectors write, oldest first or newest first, read without writing to it. */
export async function readAuditTrail (config: Pick<Config, 'dataDir' | 'databaseUrl'>, query: AuditQuery, limit: number): Promise<{ trail: string, page: AuditPage }> {
  const trail = trailWhere(config)
  if (config.databaseUrl) {
    const pool = createDatabasePool({ url: config.databaseUrl, applicationName: 'placeguard-audit-list', logger: createLogger({ level: 'silent' }), max: 1 })
    try {
      return { trail, page: await new PgAuditStore({ pool }).page(query, limit) }
    } catch (error) {
      throw new PlaceGuardError('PG_ERR_DB_UNREACHABLE', `cannot read the audit trail in ${trail}: ${(error as Error).message}`, { field: 'databaseUrl', cause: error })
    } finally {
      await pool.end()
    }
  }
  if (!existsSync(trail)) return { trail, page: { items: [], total: 0, last: null } }
  const store = new SqliteAuditStore({ path: trail, readOnly: true })
  try {
    return { trail, page: store.page(query, limit) }
  } finally {
    store.close()
  }
}

/** A command-line action as the trail records it (docs/audit-trail.md, "The command line"). */
export interface CliAction {
  /** `room.verb`, as the API's: `pki.revoke`, `devices.add`, `quarantine.add`… */
  action: string
  /** The device, supplier, serial or source acted on; null for the whole. */
  subject: string | null
  /** The flags that matter, never key material or a passphrase. */
  detail?: Record<string, unknown>
  /**
   * Takes access away (a revocation, a quarantine): carried out even when
   * the trail cannot record it, with a warning. Every other action is
   * refused then, as the API refuses.
   */
  protective?: boolean
}

/** Who runs the command and on which machine. */
export interface CliOperator { user: string, host: string }

/**
 * What an action tells the trail beyond how it went: the serial issued,
 * how many advisories synced; and its subject when only the action learns
 * it (`pki sign`: the CSR's CN).
 */
export type CliNote = (detail: Record<string, unknown>, subject?: string) => void

export interface CliAuditOptions {
  operator: CliOperator
  /** Where the warning of an unrecorded protective action goes (stderr). */
  warn: (message: string) => void
}

/** Error messages in the trail are bounded, as the API's. */
const MESSAGE_CHARS = 500

/**
 * Runs an operator's command-line action between two entries of the trail
 * the collectors write (the group's PostgreSQL with a database URL, else
 * `<data-dir>/audit.db`, so one chain): `requested` before it runs, its
 * outcome after — `done`, `refused` (bad input, no such device: the
 * error's code is a 4xx one) or `failed` — with the error's code and
 * message and what the action noted.
 *
 * When the request cannot be recorded the action is refused with
 * PG_ERR_AUDIT_UNAVAILABLE, as the API refuses, unless it is protective:
 * a revocation or a quarantine goes ahead, since holding back the
 * response to a compromised device does more harm than an action missing
 * from the trail, and the operator at this shell could act around the
 * trail anyway (STRIDE R is answered for the API, not for a root shell).
 */
export async function auditedCliAction<T> (
  config: Pick<Config, 'dataDir' | 'databaseUrl' | 'delivery'>, what: CliAction, run: (note: CliNote) => Promise<T> | T, options: CliAuditOptions,
): Promise<T> {
  const who = { actor: `cli:${options.operator.user}`, action: what.action, subject: what.subject, from: `cli@${options.operator.host}` }
  const trail = await openTrail(config).catch((error: Error) => ({ where: trailWhere(config), error }))
  const append = async (detail: Record<string, unknown>, subject = who.subject): Promise<AuditEntry> => {
    if ('error' in trail) throw trail.error
    const entry = await trail.store.append({ ...who, subject, detail })
    try {
      await trail.copy(entry)
    } catch (error) {
      options.warn(`placeguard: warning: entry ${entry.seq} of the audit trail is recorded, but not queued for the syslog sinks: ${(error as Error).message}`)
    }
    return entry
  }
  try {
    let requested: AuditEntry | undefined
    try {
      requested = await append({ outcome: 'requested', ...what.detail })
    } catch (error) {
      const why = (error as Error).message
      if (!what.protective) {
        throw new PlaceGuardError('PG_ERR_AUDIT_UNAVAILABLE', `${what.action} was not carried out: the audit trail (${trail.where}) cannot record it: ${why}`, {
          hint: 'make the trail writable (disk space, permissions, PostgreSQL) and run the command again', cause: error,
        })
      }
      options.warn(`placeguard: warning: the audit trail (${trail.where}) cannot record ${what.action} (${why}); carried out all the same, since it takes access away`)
    }
    const noted: Record<string, unknown> = {}
    let learnt: string | undefined
    const outcome = async (error?: unknown): Promise<void> => {
      const status = error === undefined ? undefined : error instanceof PlaceGuardError ? error.statusCode : 500
      const detail = {
        outcome: status === undefined ? 'done' : status < 500 ? 'refused' : 'failed',
        request: requested?.seq ?? null, ...noted,
        ...(error instanceof PlaceGuardError ? { code: error.code } : {}),
        ...(error === undefined ? {} : { error: (error as Error).message.slice(0, MESSAGE_CHARS) }),
      }
      try {
        await append(detail, learnt ?? who.subject)
      } catch (failure) {
        options.warn(`placeguard: warning: ${what.action} ${detail.outcome === 'done' ? 'was carried out' : `ended ${detail.outcome}`}, but the audit trail (${trail.where}) cannot record its outcome: ${(failure as Error).message}`)
      }
    }
    let result: T
    try {
      result = await run((detail, subject) => {
        Object.assign(noted, detail)
        learnt = subject ?? learnt
      })
    } catch (error) {
      await outcome(error)
      throw error
    }
    await outcome()
    return result
  } finally {
    if (!('error' in trail)) await trail.close()
  }
}

function trailWhere (config: Pick<Config, 'dataDir' | 'databaseUrl'>): string {
  return config.databaseUrl ? redactDatabaseUrl(config.databaseUrl) : join(config.dataDir, 'audit.db')
}

interface OpenTrail {
  where: string
  store: AuditStore | AsyncAuditStore
  /** Queues an entry for the configured sinks that take the trail, in the outbox the collectors send from. */
  copy: (entry: AuditEntry) => Promise<void>
  close: () => Promise<void>
}

/**
 * The trail the collectors write, opened for appending, and beside it
 * their outbox when a configured sink takes the trail (syslog): an entry
 * the CLI writes is queued there for the collector to send, as the API's
 * are. The caller closes both.
 */
async function openTrail (config: Pick<Config, 'dataDir' | 'databaseUrl' | 'delivery'>): Promise<OpenTrail> {
  const where = trailWhere(config)
  const sinks = config.delivery.sinks.filter(takesAuditTrail).map((sink) => sink.name ?? sink.type)
  const queue = (outbox: AnyOutboxStore) => async (entry: AuditEntry) => {
    if (sinks.length > 0) await outbox.add(sinks.map((sink) => auditDelivery(sink, entry, Date.now())), { unlessDelivered: true })
  }
  if (config.databaseUrl) {
    // Not migrated here: the collectors migrate the group's database; a trail they never made is an error to see.
    const pool = createDatabasePool({ url: config.databaseUrl, applicationName: 'placeguard-cli', logger: createLogger({ level: 'silent' }), max: 1 })
    return { where, store: new PgAuditStore({ pool }), copy: queue(new PgOutboxStore({ pool })), close: () => pool.end() }
  }
  mkdirSync(config.dataDir, { recursive: true })
  const store = new SqliteAuditStore({ path: where })
  const outbox = sinks.length > 0 ? new SqliteOutboxStore({ path: join(config.dataDir, 'outbox.db') }) : undefined
  return {
    where, store, copy: outbox ? queue(outbox) : async () => {},
    close: async () => {
      store.close()
      outbox?.close()
    },
  }
}

/**
 * The trail with a copy of every entry it records handed to `copy` (the
 * outbox, for the syslog sinks). A copy that fails is `failed`'s, never
 * the action's: the entry is in the trail, which is the record.
 */
export function copiedToSinks<S extends AuditStore | AsyncAuditStore> (store: S, copy: (entry: AuditEntry) => void, failed: (error: Error, entry: AuditEntry) => void): S {
  const copied = (entry: AuditEntry): AuditEntry => {
    try {
      copy(entry)
    } catch (error) {
      failed(error as Error, entry)
    }
    return entry
  }
  const trail = store as AuditStore
  return {
    append: (event: AuditEvent) => {
      const appended = trail.append(event) as AuditEntry | Promise<AuditEntry>
      return appended instanceof Promise ? appended.then(copied) : copied(appended)
    },
    page: (query: AuditQuery, limit: number, after?: number) => trail.page(query, limit, after),
    verify: () => trail.verify(),
    close: () => trail.close(),
  } as S
}
