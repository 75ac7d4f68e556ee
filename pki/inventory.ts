import { DatabaseSync } from 'node:sqlite'
import { inTransaction } from '../shared/sqlite.ts'
import type { DeviceKind } from '../shared/ids.ts'
import type { KeyAlgorithm } from './certificates.ts'

export type CertificateRole = 'device' | 'collector' | 'server'

/** One certificate the fleet CA signed: the asset inventory's row. */
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
   * What the CA decided: `superseded` is an older certificate of a renewed
   * device, still valid (not revoked) until the device has switched;
   * `expired` and `not-yet-valid` are derived at read time.
   */
  status: 'active' | 'revoked' | 'superseded'
  issuedAt: string
  revokedAt: string | null
  /** SHA-256 of the DER certificate, hex — what the broker sees on the wire. */
  fingerprint: string
}

export type InventoryStatus = 'active' | 'revoked' | 'superseded' | 'expired' | 'not-yet-valid'

export function effectiveStatus (record: InventoryRecord, now: Date): InventoryStatus {
  if (record.status === 'revoked') return 'revoked'
  if (Date.parse(record.notAfter) < now.getTime()) return 'expired'
  if (record.status === 'superseded') return 'superseded'
  if (Date.parse(record.notBefore) > now.getTime()) return 'not-yet-valid'
  return 'active'
}

const CERTIFICATES = (name: string) => `
CREATE TABLE IF NOT EXISTS ${name} (
  serial        TEXT PRIMARY KEY,
  device_id     TEXT NOT NULL,
  role          TEXT NOT NULL CHECK (role IN ('device', 'collector', 'server')),
  kind          TEXT,
  site          TEXT,
  not_before    TEXT NOT NULL,
  not_after     TEXT NOT NULL,
  key_algorithm TEXT NOT NULL,
  status        TEXT NOT NULL CHECK (status IN ('active', 'revoked', 'superseded')),
  issued_at     TEXT NOT NULL,
  revoked_at    TEXT,
  fingerprint   TEXT NOT NULL
);`

const SCHEMA = `${CERTIFICATES('certificates')}
-- One active certificate per device id: a second would be a cloned identity.
CREATE UNIQUE INDEX IF NOT EXISTS one_active_identity
  ON certificates (role, device_id) WHERE status = 'active';
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
`

interface Row {
  serial: string, device_id: string, role: CertificateRole, kind: DeviceKind | null, site: string | null,
  not_before: string, not_after: string, key_algorithm: KeyAlgorithm, status: InventoryRecord['status'],
  issued_at: string, revoked_at: string | null, fingerprint: string
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
  }
}

/** The inventory in SQLite (node:sqlite, WAL): the CLI and a running broker may share it. */
export class Inventory {
  readonly #db: DatabaseSync
  readonly #insert: ReturnType<DatabaseSync['prepare']>

  constructor (path: string) {
    this.#db = new DatabaseSync(path)
    this.#db.exec('PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000;')
    this.#migrate()
    this.#db.exec(SCHEMA)
    this.#insert = this.#db.prepare(`INSERT INTO certificates
      (serial, device_id, role, kind, site, not_before, not_after, key_algorithm, status, issued_at, revoked_at, fingerprint)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
  }

  /** Runs `work` in one transaction; a throw rolls back everything it wrote. */
  transaction<T> (work: () => T): T {
    return inTransaction(this.#db, work)
  }

  insert (record: InventoryRecord): void {
    this.#insert.run(
      record.serial, record.deviceId, record.role, record.kind, record.site, record.notBefore, record.notAfter,
      record.keyAlgorithm, record.status, record.issuedAt, record.revokedAt, record.fingerprint)
  }

  activeFor (role: CertificateRole, deviceId: string): InventoryRecord | undefined {
    const row = this.#db.prepare('SELECT * FROM certificates WHERE role = ? AND device_id = ? AND status = \'active\'')
      .get(role, deviceId) as Row | undefined
    return row && fromRow(row)
  }

  /** Device ids with an active certificate, for bulk checks. */
  activeDeviceIds (): Set<string> {
    const rows = this.#db.prepare('SELECT device_id FROM certificates WHERE role = \'device\' AND status = \'active\'').all() as Array<{ device_id: string }>
    return new Set(rows.map((row) => row.device_id))
  }

  /** Revokes the device's active certificate and any superseded ones still valid: revocation means the identity, every key of it. */
  revoke (role: CertificateRole, deviceId: string, at: Date): InventoryRecord[] {
    const rows = this.#db.prepare(`UPDATE certificates SET status = 'revoked', revoked_at = ?
      WHERE role = ? AND device_id = ? AND status IN ('active', 'superseded') RETURNING *`).all(at.toISOString(), role, deviceId) as unknown as Row[]
    return rows.map(fromRow)
  }

  /** Marks the device's active certificate superseded (a renewal), leaving it valid; answers it. */
  supersede (role: CertificateRole, deviceId: string): InventoryRecord | undefined {
    const row = this.#db.prepare(`UPDATE certificates SET status = 'superseded'
      WHERE role = ? AND device_id = ? AND status = 'active' RETURNING *`).get(role, deviceId) as Row | undefined
    return row && fromRow(row)
  }

  /**
   * Inventories made before renewals existed have a CHECK constraint
   * without 'superseded'; SQLite cannot alter a CHECK, so the table is
   * rebuilt in one transaction (same rows, same index).
   */
  #migrate (): void {
    const table = this.#db.prepare('SELECT sql FROM sqlite_master WHERE type = \'table\' AND name = \'certificates\'').get() as { sql: string } | undefined
    if (!table || table.sql.includes('superseded')) return
    inTransaction(this.#db, () => {
      this.#db.exec(CERTIFICATES('certificates_next'))
      this.#db.exec('INSERT INTO certificates_next SELECT * FROM certificates; DROP TABLE certificates; ALTER TABLE certificates_next RENAME TO certificates;')
    })
  }

  /** Revoked certificates that have not yet expired: what the CRL must list (RFC 5280 §3.3). */
  revokedUnexpired (now: Date): InventoryRecord[] {
    const rows = this.#db.prepare('SELECT * FROM certificates WHERE status = \'revoked\' AND not_after >= ? ORDER BY revoked_at')
      .all(now.toISOString()) as unknown as Row[]
    return rows.map(fromRow)
  }

  list (role?: CertificateRole): InventoryRecord[] {
    const rows = (role
      ? this.#db.prepare('SELECT * FROM certificates WHERE role = ? ORDER BY device_id, issued_at').all(role)
      : this.#db.prepare('SELECT * FROM certificates ORDER BY role, device_id, issued_at').all()) as unknown as Row[]
    return rows.map(fromRow)
  }

  /** Increments and returns the CRL number (RFC 5280 §5.2.3: monotonically increasing). */
  nextCrlNumber (): number {
    const row = this.#db.prepare(`INSERT INTO meta (key, value) VALUES ('crl_number', '1')
      ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + 1 RETURNING value`).get() as { value: string }
    return Number(row.value)
  }

  close (): void {
    this.#db.close()
  }
}
