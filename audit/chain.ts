/**
 * The audit trail's hash chain, as pure functions: what an entry's hash
 * covers, how a chain is walked, and how a break is named. The SQLite
 * store computes hashes here; PostgreSQL computes the same ones in SQL
 * (`audit_hash()` in db/migrations/0001_initial.sql), and both stores name
 * a break with `classifyBreak`.
 *
 * The hash is sha256 over the text of a JSON array
 *   [seq, prev_hash, time in integer microseconds, actor, action, subject, detail]
 * written as PostgreSQL writes jsonb (`canonicalJson`), so one entry hashes
 * alike in either store and a copy of the trail can be checked by anyone
 * with sha256 and this description.
 */
import { createHash } from 'node:crypto'
import type { AuditBreak, AuditVerdict } from './audit-store.ts'

/** The previous hash of the first entry, and the head of an empty trail. */
export const GENESIS_HASH = '0'.repeat(64)

/** What an entry's hash covers. */
export interface ChainFields {
  seq: number
  prevHash: string
  /** Microseconds since the epoch: free of time zones and date formats. */
  atMicros: bigint | number
  actor: string
  action: string
  subject: string | null
  detail: unknown
}

export interface ChainHead { seq: number, hash: string }

/**
 * `value` as jsonb's text form: keys sorted by their UTF-8 length, then
 * bytewise; ", " and ": " between items; strings escaped as JSON.stringify
 * escapes them (as PostgreSQL's escape_json does). Integers and plain
 * decimals read the same in both; a number JavaScript writes with an
 * exponent (1e21, 1e-7) does not, and has no place in an audit detail.
 */
export function canonicalJson (value: unknown): string {
  return write(JSON.parse(JSON.stringify(value ?? null)) as unknown)
}

function write (value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(write).join(', ')}]`
  if (value !== null && typeof value === 'object') {
    const keys = Object.keys(value).map((key) => [key, Buffer.from(key, 'utf8')] as const)
      .sort(([, a], [, b]) => a.length - b.length || Buffer.compare(a, b))
    return `{${keys.map(([key]) => `${JSON.stringify(key)}: ${write((value as Record<string, unknown>)[key])}`).join(', ')}}`
  }
  return JSON.stringify(value)
}

export function chainHash (fields: ChainFields): string {
  const text = canonicalJson([fields.seq, fields.prevHash, Number(fields.atMicros), fields.actor, fields.action, fields.subject, fields.detail])
  return createHash('sha256').update(text, 'utf8').digest('hex')
}

/**
 * The first seq at which a chain breaks, as `audit_verify()` answers it:
 * walking entries by seq, the first that is missing, does not follow the
 * one before, or does not match its hash; else, when the head does not
 * match the last entry, the seq after the last; undefined when whole.
 * `rows` in seq order. With the break comes the entry stored at it, if
 * any, and whether it matches its own hash (for `classifyBreak`).
 */
export function firstBreak (rows: Iterable<ChainFields & { hash: string }>, head: ChainHead): { brokenAt: number, entry: { selfConsistent: boolean } | undefined } | undefined {
  let expected = 1
  let prev = GENESIS_HASH
  for (const row of rows) {
    if (row.seq !== expected) return { brokenAt: expected, entry: undefined }
    const selfConsistent = row.hash === chainHash(row)
    if (row.prevHash !== prev || !selfConsistent) return { brokenAt: expected, entry: { selfConsistent } }
    prev = row.hash
    expected++
  }
  if (head.seq !== expected - 1 || head.hash !== prev) return { brokenAt: expected, entry: undefined }
  return undefined
}

/**
 * Names a break `audit_verify()` (or `firstBreak`) found at `brokenAt`,
 * from the entry there (absent, or whether it matches its own hash), the
 * head, and the last seq stored. A break can have more than one cause
 * (an edited entry and a rewritten hash read alike); the name is the
 * likelier one and the message says what is certain.
 */
export function classifyBreak (brokenAt: number, entry: { selfConsistent: boolean } | undefined, head: ChainHead, lastSeq: number): { brokenAt: number, reason: AuditBreak, message: string } {
  const named = (at: number, reason: AuditBreak, message: string) => ({ brokenAt: at, reason, message })
  // Entries past the head were written around the chain, not appended through it: the first of them is the break.
  if (brokenAt > head.seq && lastSeq > head.seq) {
    return named(head.seq + 1, 'inserted', `entries from seq ${head.seq + 1} to ${lastSeq} lie past the chain's head (seq ${head.seq}): they were not appended through the trail`)
  }
  if (entry && !entry.selfConsistent) return named(brokenAt, 'edited', `entry ${brokenAt} does not match its hash: it was changed after it was written`)
  if (entry) return named(brokenAt, 'edited', `entry ${brokenAt} does not follow entry ${brokenAt - 1}: one of them was rewritten with a fresh hash`)
  if (brokenAt <= head.seq) return named(brokenAt, 'deleted', `entry ${brokenAt} is missing: it was removed (the head says ${head.seq} were written)`)
  return named(brokenAt, 'head-moved', `the head (seq ${head.seq}) does not match the last entry: the head, or the last entry and its hash, were rewritten`)
}

/** The verdict on a chain of `entries` entries, from what `firstBreak` or `audit_verify()` found. */
export function verdict (entries: number, found: { brokenAt: number, reason: AuditBreak, message: string } | undefined): AuditVerdict {
  return found ? { intact: false, entries, ...found } : { intact: true, entries }
}
