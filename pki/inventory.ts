import { DatabaseSync } from 'node:sqlite'
import { inTransaction } from '../shared/sqlite.ts'
import type { DeviceKind } from '../shared/ids.ts'
import type { KeyAlgorithm } from './certificates.ts'

export type CertificateRole = 'device' | 'collector' | 'server'

/** One certificate the fleet CA signed, or is about to: the asset inventory's row. */
export interface InventoryRecord {
  serial: string
  deviceId: string
  role: CertificateRole
  kind: DeviceKind | null
  site: string | null
  notBefore: string
  notAfter: string
  keyAlgorithm: KeyAlgorithm
  /**
   * What the CA decided: `pending` is a serial recorded before it was
   * signed, so that a crash between signing and recording cannot leave a
   * certificate nobody can revoke (`pki reconcile` settles what a crash
   * left); `superseded` is an older certificate of a renewed device, still
   * valid (not revoked) until the device has switched; `expired` and
   * `not-yet-valid` are derived at read time.
   */
  status: 'pending' | 'active' | 'revoked' | 'superseded'
  issuedAt: string
  revokedAt: string | null
  /** SHA-256 of the DER certificate, hex — what the broker sees on the wire; null until signed. */
  fingerprint: string | null
  /** SHA-256 of the DER SubjectPublicKeyInfo, hex: one key, one identity. Null until known, and in rows older than the check. */
  spkiSha256: string | null
  /** Where the certificate file was written, for `pki reconcile`; null in rows older than it. */
  certificatePath: string | null
}

/** A record's status as read at a given time (validity.ts, effectiveStatus). */
export type InventoryStatus = 'pending' | 'active' | 'revoked' | 'superseded' | 'expired' | 'not-yet-valid'

/** The columns every inventory ever had, in order: what a migration copies. */
const BASE_COLUMNS = 'serial, device_id, role, kind, site, not_before, not_after, key_algorithm, status, issued_at, revoked_at, fingerprint'

const CERTIFICATES = (name: string) => `
CREATE TABLE IF NOT EXISTS ${name} (
  serial           TEXT PRIMARY KEY,
  device_id        TEXT NOT NULL,
  role             TEXT NOT NULL CHECK (role IN ('device', 'collector', 'server')),
  kind             TEXT,
  site             TEXT,
  not_before       TEXT NOT NULL,
  not_after        TEXT NOT NULL,
  key_algorithm    TEXT NOT NULL,
  status           TEXT NOT NULL CHECK (status IN ('pending', 'active', 'revoked', 'superseded')),
  issued_at        TEXT NOT NULL,
  revoked_at       TEXT,
  fingerprint      TEXT,
  spki_sha256      TEXT,
  certificate_path TEXT
);`

const SCHEMA = `${CERTIFICATES('certificates')}
-- One active certificate per device id: a second would be a cloned identity.
CREATE UNIQUE INDEX IF NOT EXISTS one_active_identity
  ON certificates (role, device_id) WHERE status = 'active';
-- One issue or renewal in flight per device id, whichever process runs it.
CREATE UNIQUE INDEX IF NOT EXISTS one_pending_identity
  ON certificates (role, device_id) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS certificates_by_key ON certificates (spki_sha256) WHERE spki_sha256 IS NOT NULL;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
`

interface Row {
  serial: string, device_id: string, role: CertificateRole, kind: DeviceKind | null, site: string | null,
  not_before: string, not_after: string, key_algorithm: KeyAlgorithm, status: InventoryRecord['status'],
  issued_at: string, revoked_at: string | null, fingerprint: string | null, spki_sha256: string | null,
  certificate_path: string | null
}

function fromRow (row: Row): InventoryRecord {
  return {
    serial: row.serial,
    deviceId: row.device_id,
    role: row.role,
    kind: row.kind,
    site: row.site,
    notBefore: row.not_before,
    notAfter: row.not_after,
    keyAlgorithm: row.key_algorithm,
    status: row.status,
    issuedAt: row.issued_at,
    revokedAt: row.revoked_at,
    fingerprint: row.fingerprint,
    spkiSha256: row.spki_sha256,
    certificatePath: row.certificate_path,
  }
}

/** The spellings a serial may be stored under: lower-case hex, with or without a leading zero nibble. */
function serialSpellings (serial: string): string[] {
  const bare = serial.toLowerCase().replace(/^0+(?=.)/, '')
  return [bare, `0${bare}`, `00${bare}`]
}

/**
 * The inventory in SQLite (node:sqlite, WAL): the CLI and a running broker
 * may share it. Its write lock (BEGIN IMMEDIATE) is also the lock every
 * process takes to change a certificate's status or write the CRL.
 */
export class Inventory {
  readonly #db: DatabaseSync
  readonly #insert: ReturnType<DatabaseSync['prepare']>
  /** Prepared once each: bulk issuing runs a few statements per certificate, 10,000 certificates at a time. */
  readonly #statements = new Map<string, ReturnType<DatabaseSync['prepare']>>()

  constructor (path: string) {
    this.#db = new DatabaseSync(path)
    this.#db.exec('PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000;')
    this.#migrate()
    this.#db.exec(SCHEMA)
    this.#insert = this.#db.prepare(`INSERT INTO certificates (${BASE_COLUMNS}, spki_sha256, certificate_path)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
  }

  /** Runs `work` in one IMMEDIATE transaction (the cross-process lock); a throw rolls back everything it wrote. */
  transaction<T> (work: () => T): T {
    return inTransaction(this.#db, work)
  }

  insert (record: InventoryRecord): void {
    this.#insert.run(
      record.serial, record.deviceId, record.role, record.kind, record.site, record.notBefore, record.notAfter,
      record.keyAlgorithm, record.status, record.issuedAt, record.revokedAt, record.fingerprint, record.spkiSha256,
      record.certificatePath)
  }

  activeFor (role: CertificateRole, deviceId: string): InventoryRecord | undefined {
    return this.#one('SELECT * FROM certificates WHERE role = ? AND device_id = ? AND status = \'active\'', role, deviceId)
  }

  pendingFor (role: CertificateRole, deviceId: string): InventoryRecord | undefined {
    return this.#one('SELECT * FROM certificates WHERE role = ? AND device_id = ? AND status = \'pending\'', role, deviceId)
  }

  bySerial (serial: string): InventoryRecord | undefined {
    const spellings = serialSpellings(serial)
    return this.#one('SELECT * FROM certificates WHERE serial IN (?, ?, ?)', ...spellings)
  }

  /** A certificate not revoked that binds this public key to another identity (a second device with one key is a clone). */
  holderOfKey (spkiSha256: string, role: CertificateRole, deviceId: string): InventoryRecord | undefined {
    return this.#one(`SELECT * FROM certificates WHERE spki_sha256 = ? AND status <> 'revoked'
      AND NOT (role = ? AND device_id = ?) LIMIT 1`, spkiSha256, role, deviceId)
  }

  /** Device ids with an active certificate, for bulk checks. */
  activeDeviceIds (): Set<string> {
    const rows = this.#db.prepare('SELECT device_id FROM certificates WHERE role = \'device\' AND status = \'active\'').all() as Array<{ device_id: string }>
    return new Set(rows.map((row) => row.device_id))
  }

  pending (): InventoryRecord[] {
    return this.#many('SELECT * FROM certificates WHERE status = \'pending\' ORDER BY issued_at, serial')
  }

  /**
   * A pending certificate has landed: it becomes the identity's active one,
   * and the one it replaces (a renewal) is superseded. Answers undefined if
   * the row is no longer pending — revoked meanwhile, so it must stay so.
   */
  activate (serial: string, landed: { fingerprint: string, spkiSha256: string }): InventoryRecord | undefined {
    const pending = this.#one('SELECT * FROM certificates WHERE serial = ? AND status = \'pending\'', serial)
    if (!pending) return undefined
    this.supersede(pending.role, pending.deviceId)
    return this.#one(`UPDATE certificates SET status = 'active', fingerprint = ?, spki_sha256 = ?
      WHERE serial = ? RETURNING *`, landed.fingerprint, landed.spkiSha256, serial)
  }

  /**
   * Revokes the device's active certificate, any superseded ones still
   * valid, and one being issued or renewed: revocation means the identity,
   * every key of it, including a certificate not yet recorded as landed.
   */
  revoke (role: CertificateRole, deviceId: string, at: Date): InventoryRecord[] {
    return this.#many(`UPDATE certificates SET status = 'revoked', revoked_at = ?
      WHERE role = ? AND device_id = ? AND status IN ('pending', 'active', 'superseded') RETURNING *`, at.toISOString(), role, deviceId)
  }

  /** Revokes one certificate whatever its status; one already revoked keeps its first revocation date. */
  revokeSerial (serial: string, at: Date): InventoryRecord | undefined {
    const spellings = serialSpellings(serial)
    return this.#one(`UPDATE certificates SET status = 'revoked', revoked_at = COALESCE(revoked_at, ?)
      WHERE serial IN (?, ?, ?) RETURNING *`, at.toISOString(), ...spellings)
  }

  /** Marks the device's active certificate superseded (a renewal), leaving it valid; answers it. */
  supersede (role: CertificateRole, deviceId: string): InventoryRecord | undefined {
    return this.#one(`UPDATE certificates SET status = 'superseded'
      WHERE role = ? AND device_id = ? AND status = 'active' RETURNING *`, role, deviceId)
  }

  /** Certificates still in service whose key hash is unknown: rows from before the one-key check. */
  withoutKeyHash (): InventoryRecord[] {
    return this.#many('SELECT * FROM certificates WHERE spki_sha256 IS NULL AND status IN (\'active\', \'superseded\') ORDER BY serial')
  }

  recordKeyHash (serial: string, spkiSha256: string, certificatePath: string): void {
    this.#statement('UPDATE certificates SET spki_sha256 = ?, certificate_path = COALESCE(certificate_path, ?) WHERE serial = ?')
      .run(spkiSha256, certificatePath, serial)
  }

  meta (key: string): string | undefined {
    return (this.#statement('SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined)?.value
  }

  setMeta (key: string, value: string): void {
    this.#statement('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value').run(key, value)
  }

  /**
   * Older inventories have a status CHECK without 'pending' (and, older
   * still, without 'superseded') and no key or path columns; SQLite cannot
   * alter a CHECK, so the table is rebuilt in one transaction: same rows,
   * the new columns empty, the indexes recreated by SCHEMA.
   */
  #migrate (): void {
    const table = this.#db.prepare('SELECT sql FROM sqlite_master WHERE type = \'table\' AND name = \'certificates\'').get() as { sql: string } | undefined
    if (!table || table.sql.includes('\'pending\'')) return
    inTransaction(this.#db, () => {
      this.#db.exec(CERTIFICATES('certificates_next'))
      this.#db.exec(`INSERT INTO certificates_next (${BASE_COLUMNS}) SELECT ${BASE_COLUMNS} FROM certificates;
        DROP TABLE certificates; ALTER TABLE certificates_next RENAME TO certificates;`)
    })
  }

  /**
   * What the CRL lists: every revoked certificate that has not expired, and
   * those that expired after `keepExpiredSince`. RFC 5280 §3.3 lets a CA
   * drop an entry once the certificate expires, but the broker checks
   * notAfter only at the handshake: a session opened just before expiry
   * stays open, and the CRL serial is all its live-session sweep can drop
   * it by. Pending rows that were revoked are listed too: a certificate
   * with that serial may have been signed.
   */
  crlEntries (keepExpiredSince: Date): InventoryRecord[] {
    return this.#many('SELECT * FROM certificates WHERE status = \'revoked\' AND not_after >= ? ORDER BY revoked_at, serial', keepExpiredSince.toISOString())
  }

  list (role?: CertificateRole): InventoryRecord[] {
    return role
      ? this.#many('SELECT * FROM certificates WHERE role = ? ORDER BY device_id, issued_at', role)
      : this.#many('SELECT * FROM certificates ORDER BY role, device_id, issued_at')
  }

  /**
   * Increments and returns the CRL number (RFC 5280 §5.2.3: monotonically
   * increasing), never below `atLeast` — the number on disk plus one, in
   * case a file was written under a number the database then lost.
   */
  nextCrlNumber (atLeast = 1): number {
    const row = this.#db.prepare(`INSERT INTO meta (key, value) VALUES ('crl_number', CAST(? AS TEXT))
      ON CONFLICT (key) DO UPDATE SET value = MAX(CAST(value AS INTEGER) + 1, CAST(excluded.value AS INTEGER)) RETURNING value`).get(atLeast) as { value: string }
    return Number(row.value)
  }

  close (): void {
    this.#db.close()
  }

  #one (sql: string, ...params: Array<string | number | null>): InventoryRecord | undefined {
    const row = this.#statement(sql).get(...params) as Row | undefined
    return row && fromRow(row)
  }

  #many (sql: string, ...params: Array<string | number | null>): InventoryRecord[] {
    return (this.#statement(sql).all(...params) as unknown as Row[]).map(fromRow)
  }

  #statement (sql: string): ReturnType<DatabaseSync['prepare']> {
    let statement = this.#statements.get(sql)
    if (!statement) this.#statements.set(sql, statement = this.#db.prepare(sql))
    return statement
  }
}
