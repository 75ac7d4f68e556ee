import { DatabaseSync } from 'node:sqlite'
import { inTransaction } from '../shared/sqlite.ts'
import type { DeviceKind } from '../shared/ids.ts'
import type { LorawanNetwork } from '../shared/lorawan.ts'
import type { KeyAlgorithm } from './certificates.ts'

/** `integration`: a LoRaWAN network server's MQTT integration (issue 16); `supplier`: a supplier's remote access (issue 17). */
export type CertificateRole = 'device' | 'collector' | 'server' | 'integration' | 'supplier'

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
  /** An integration's LoRaWAN network server; null for every other role. */
  network: LorawanNetwork | null
}

/**
 * A device without a certificate of its own, behind a LoRaWAN network
 * server: what `devices add` registered. The integration vouches for it;
 * the broker never sees it connect.
 */
export interface LorawanDeviceRecord {
  deviceId: string
  kind: DeviceKind
  site: string
  /** Lower-case, 16 hex digits (normalizeDevEui). */
  devEui: string
  integrationId: string
  /** The integration's network, from its latest certificate. */
  network: LorawanNetwork
  addedAt: string
}

/** A record's status as read at a given time (validity.ts, effectiveStatus). */
export type InventoryStatus = 'pending' | 'active' | 'revoked' | 'superseded' | 'expired' | 'not-yet-valid'

/** The columns every inventory ever had, in order. */
const BASE_COLUMNS = 'serial, device_id, role, kind, site, not_before, not_after, key_algorithm, status, issued_at, revoked_at, fingerprint'
/** Every column of today's table: a migration copies those the old table has. */
const ALL_COLUMNS = [...BASE_COLUMNS.split(', '), 'spki_sha256', 'certificate_path', 'network']

const CERTIFICATES = (name: string) => `
CREATE TABLE IF NOT EXISTS ${name} (
  serial           TEXT PRIMARY KEY,
  device_id        TEXT NOT NULL,
  role             TEXT NOT NULL CHECK (role IN ('device', 'collector', 'server', 'integration', 'supplier')),
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
  certificate_path TEXT,
  network          TEXT CHECK (network IN ('chirpstack', 'tts'))
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
-- Devices behind a LoRaWAN network server (issue 16): no certificate, vouched for by an integration.
CREATE TABLE IF NOT EXISTS lorawan_devices (
  device_id      TEXT PRIMARY KEY,
  kind           TEXT NOT NULL CHECK (kind IN ('flood', 'energy', 'housing')),
  site           TEXT NOT NULL,
  -- One DevEUI, one device: a second registration would let two ids share one radio's readings.
  dev_eui        TEXT NOT NULL UNIQUE,
  integration_id TEXT NOT NULL,
  added_at       TEXT NOT NULL
);
-- A supplier's grant (issue 17), one row per supplier id, kept beside its certificates:
-- the kinds and sites it maintains and its access windows, as JSON (the windows as given,
-- so a weekly duration "2h" reads back as written).
CREATE TABLE IF NOT EXISTS suppliers (
  supplier_id TEXT PRIMARY KEY,
  kinds       TEXT NOT NULL,
  sites       TEXT NOT NULL,
  windows     TEXT NOT NULL,
  updated_at  TEXT NOT NULL
);
`

/** What a supplier may do, as stored: kinds, sites and access windows as given (shared/access-windows.ts). */
export interface SupplierRecord { supplierId: string, kinds: DeviceKind[], sites: string[], windows: unknown[], updatedAt: string }

interface SupplierRow { supplier_id: string, kinds: string, sites: string, windows: string, updated_at: string }

function supplierRecordOf (row: SupplierRow): SupplierRecord {
  return { supplierId: row.supplier_id, kinds: JSON.parse(row.kinds), sites: JSON.parse(row.sites), windows: JSON.parse(row.windows), updatedAt: row.updated_at }
}

interface Row {
  serial: string, device_id: string, role: CertificateRole, kind: DeviceKind | null, site: string | null,
  not_before: string, not_after: string, key_algorithm: KeyAlgorithm, status: InventoryRecord['status'],
  issued_at: string, revoked_at: string | null, fingerprint: string | null, spki_sha256: string | null,
  certificate_path: string | null, network: LorawanNetwork | null
}

interface LorawanRow { device_id: string, kind: DeviceKind, site: string, dev_eui: string, integration_id: string, network: LorawanNetwork, added_at: string }

/** A registered device's row with its integration's network, from that integration's latest certificate. */
const LORAWAN_SELECT = `SELECT d.*, (SELECT c.network FROM certificates c WHERE c.role = 'integration' AND c.device_id = d.integration_id
  ORDER BY c.status = 'active' DESC, c.issued_at DESC LIMIT 1) AS network FROM lorawan_devices d`

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
    network: row.network,
  }
}

function fromLorawanRow (row: LorawanRow): LorawanDeviceRecord {
  return {
    deviceId: row.device_id, kind: row.kind, site: row.site, devEui: row.dev_eui,
    integrationId: row.integration_id, network: row.network, addedAt: row.added_at,
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
    this.#insert = this.#db.prepare(`INSERT INTO certificates (${ALL_COLUMNS.join(', ')})
      VALUES (${ALL_COLUMNS.map(() => '?').join(', ')})`)
  }

  /** Runs `work` in one IMMEDIATE transaction (the cross-process lock); a throw rolls back everything it wrote. */
  transaction<T> (work: () => T): T {
    return inTransaction(this.#db, work)
  }

  insert (record: InventoryRecord): void {
    this.#insert.run(
      record.serial, record.deviceId, record.role, record.kind, record.site, record.notBefore, record.notAfter,
      record.keyAlgorithm, record.status, record.issuedAt, record.revokedAt, record.fingerprint, record.spkiSha256,
      record.certificatePath, record.network)
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

  /** The latest certificate of an identity, whatever its status: what a refusal can say of it (revoked, pending). */
  latestFor (role: CertificateRole, deviceId: string): InventoryRecord | undefined {
    return this.#one('SELECT * FROM certificates WHERE role = ? AND device_id = ? ORDER BY issued_at DESC, serial LIMIT 1', role, deviceId)
  }

  /** Registered LoRaWAN devices, by id. */
  lorawanDevices (): LorawanDeviceRecord[] {
    return (this.#statement(`${LORAWAN_SELECT} ORDER BY d.device_id`).all() as unknown as LorawanRow[]).map(fromLorawanRow)
  }

  lorawanDevice (deviceId: string): LorawanDeviceRecord | undefined {
    const row = this.#statement(`${LORAWAN_SELECT} WHERE d.device_id = ?`).get(deviceId) as LorawanRow | undefined
    return row && fromLorawanRow(row)
  }

  lorawanDeviceByDevEui (devEui: string): LorawanDeviceRecord | undefined {
    const row = this.#statement(`${LORAWAN_SELECT} WHERE d.dev_eui = ?`).get(devEui) as LorawanRow | undefined
    return row && fromLorawanRow(row)
  }

  insertLorawanDevice (record: Omit<LorawanDeviceRecord, 'network'>): void {
    this.#statement('INSERT INTO lorawan_devices (device_id, kind, site, dev_eui, integration_id, added_at) VALUES (?, ?, ?, ?, ?, ?)')
      .run(record.deviceId, record.kind, record.site, record.devEui, record.integrationId, record.addedAt)
  }

  /** Answers whether there was such a device. */
  deleteLorawanDevice (deviceId: string): boolean {
    return Number(this.#statement('DELETE FROM lorawan_devices WHERE device_id = ?').run(deviceId).changes) > 0
  }

  /** Ids a device or integration holds (an active certificate, or a registration), for bulk checks. */
  takenIds (): Set<string> {
    const rows = this.#db.prepare(`SELECT device_id FROM certificates WHERE role IN ('device', 'integration', 'supplier') AND status = 'active'
      UNION SELECT device_id FROM lorawan_devices`).all() as Array<{ device_id: string }>
    return new Set(rows.map((row) => row.device_id))
  }

  /** `role:id` of every identity being issued or renewed, for bulk checks. */
  pendingIds (): Set<string> {
    const rows = this.#statement('SELECT role, device_id FROM certificates WHERE status = \'pending\'').all() as Array<{ role: string, device_id: string }>
    return new Set(rows.map((row) => `${row.role}:${row.device_id}`))
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
   * `activate` for a new identity, which has nothing to supersede: one
   * statement a row and no row read back, for batches of thousands.
   * Answers false if the row is no longer pending (revoked meanwhile).
   */
  activateNew (serial: string, landed: { fingerprint: string, spkiSha256: string }): boolean {
    return Number(this.#statement(`UPDATE certificates SET status = 'active', fingerprint = ?, spki_sha256 = ?
      WHERE serial = ? AND status = 'pending'`).run(landed.fingerprint, landed.spkiSha256, serial).changes) === 1
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

  saveSupplier (record: SupplierRecord): void {
    this.#statement(`INSERT INTO suppliers (supplier_id, kinds, sites, windows, updated_at) VALUES (?, ?, ?, ?, ?)
      ON CONFLICT (supplier_id) DO UPDATE SET kinds = excluded.kinds, sites = excluded.sites, windows = excluded.windows, updated_at = excluded.updated_at`)
      .run(record.supplierId, JSON.stringify(record.kinds), JSON.stringify(record.sites), JSON.stringify(record.windows), record.updatedAt)
  }

  supplier (supplierId: string): SupplierRecord | undefined {
    const row = this.#statement('SELECT * FROM suppliers WHERE supplier_id = ?').get(supplierId) as SupplierRow | undefined
    return row && supplierRecordOf(row)
  }

  /** Every supplier's grant as stored, by id. */
  suppliers (): SupplierRecord[] {
    return (this.#statement('SELECT * FROM suppliers ORDER BY supplier_id').all() as unknown as SupplierRow[]).map(supplierRecordOf)
  }

  /**
   * Older inventories have a role CHECK without 'integration' or 'supplier' (and, older
   * still, a status CHECK without 'pending' or 'superseded') and lack the
   * later columns (key, path, network); SQLite cannot alter a CHECK, so the
   * table is rebuilt in one transaction: same rows, the columns the old
   * table had copied, the new ones empty, the indexes recreated by SCHEMA.
   * The registry of LoRaWAN devices is a new table: SCHEMA creates it.
   */
  #migrate (): void {
    const table = this.#db.prepare('SELECT sql FROM sqlite_master WHERE type = \'table\' AND name = \'certificates\'').get() as { sql: string } | undefined
    if (!table || table.sql.includes('\'supplier\'')) return
    const present = new Set((this.#db.prepare('PRAGMA table_info(certificates)').all() as Array<{ name: string }>).map((column) => column.name))
    const copied = ALL_COLUMNS.filter((column) => present.has(column)).join(', ')
    inTransaction(this.#db, () => {
      this.#db.exec(CERTIFICATES('certificates_next'))
      this.#db.exec(`INSERT INTO certificates_next (${copied}) SELECT ${copied} FROM certificates;
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
