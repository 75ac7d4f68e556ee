import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs'
import { X509Certificate } from 'node:crypto'
import { dirname, join } from 'node:path'
import { PlaceGuardError } from '../shared/errors.ts'
import { assertId, type DeviceKind } from '../shared/ids.ts'
import { type Clock, systemClock } from '../shared/clock.ts'
import {
  createCaCertificate, createLeafCertificate, generateKey, type KeyAlgorithm, keyAlgorithmOf, loadSigner,
  newSerialNumber, parseCsr, type Signer,
} from './certificates.ts'
import { writeFileAtomic, writeFilesAtomic } from '../shared/files.ts'
import { type Identity, identityFromSubjectAltName } from './identity.ts'
import { assertCsrKeyAlgorithm, assertDeviceId, assertDeviceIdentity, assertSerial } from './identity-rules.ts'
import { Inventory, type InventoryRecord, type InventoryStatus } from './inventory.ts'
import { deviceProductOf, DeviceProducts } from './device-products.ts'
import { type LeafJob, sha256Hex, signLeaves } from './leaf-issuer.ts'
import { deviceFiles, pkiPaths, type PkiPaths } from './paths.ts'
import { certificateOrigin, normalizeSerial, readCrl } from './crl.ts'
import { crlNumberOf, signCrlPem } from './crl-der.ts'
import {
  crlKeepExpiredSince, crlRefreshDue, crlWindow, DEFAULT_CA_DAYS, DEFAULT_CRL_DAYS, DEFAULT_CRL_KEEP_EXPIRED_DAYS,
  DEFAULT_SERVICE_DAYS, deviceValidity, effectiveStatus, type ValidityInput, windowFor,
} from './validity.ts'

const PRIVATE = 0o600

export interface PkiOptions {
  clock?: Clock
  /** Lifetime of each CRL (default 30); the broker refuses every client once it lapses, so refresh before. */
  crlValidityDays?: number
  /** How long a revoked certificate stays in the CRL after its notAfter (default 90; see Inventory.crlEntries). */
  crlKeepExpiredDays?: number
}

export interface InitOptions {
  caCommonName?: string
  caValidityDays?: number
  serverValidityDays?: number
  /** Extra server names (DNS) besides localhost, 127.0.0.1 and ::1. */
  serverNames?: string[]
}

export interface IssueRequest extends ValidityInput {
  deviceId: string
  kind: string
  site: string
  keyAlgorithm?: KeyAlgorithm
  /** Where to write the key and certificate; default `<data-dir>/pki/devices`. */
  outDir?: string
  /** The supplier's names for the device, both or neither: what advisories are matched on (device-products.ts). */
  vendor?: string
  model?: string
}

export interface IssuedDevice {
  record: InventoryRecord
  certificatePath: string
  /** Absent for `pki sign`: the device kept its key. */
  privateKeyPath?: string
}

export interface InventoryEntry extends InventoryRecord {
  effectiveStatus: InventoryStatus
  /** The device's vendor and model when recorded (`pki issue --vendor --model`). */
  vendor?: string | null
  model?: string | null
}

export interface ReconcileReport {
  /** Pending certificates whose files landed before the crash: now active. */
  activated: InventoryRecord[]
  /** Pending serials whose certificate never landed: revoked, and in the CRL. */
  revoked: InventoryRecord[]
  /** Certificate files the fleet CA signed that the inventory did not know: recorded as revoked. */
  unknown: Array<{ path: string, record: InventoryRecord }>
}

/**
 * The fleet's certificate authority: device identity, the inventory of every
 * certificate signed, and the CRL the broker enforces.
 */
export class FleetPki {
  readonly paths: PkiPaths
  readonly #clock: Clock
  readonly #crlValidityDays: number
  readonly #crlKeepExpiredDays: number
  #inventory: Inventory | undefined
  #products: DeviceProducts | undefined
  #signer: Signer | undefined

  constructor (dataDir: string, options: PkiOptions = {}) {
    this.paths = pkiPaths(dataDir)
    this.#clock = options.clock ?? systemClock
    this.#crlValidityDays = options.crlValidityDays ?? DEFAULT_CRL_DAYS
    this.#crlKeepExpiredDays = options.crlKeepExpiredDays ?? DEFAULT_CRL_KEEP_EXPIRED_DAYS
  }

  get initialized (): boolean {
    return existsSync(this.paths.caCert) && existsSync(this.paths.caKey)
  }

  /** Creates the CA, server and collector certificates and an empty CRL. Never overwrites a CA. */
  async init (options: InitOptions = {}): Promise<void> {
    if (existsSync(this.paths.caCert) || existsSync(this.paths.caKey)) {
      throw new PlaceGuardError('PG_ERR_PKI_CA_EXISTS', `a fleet CA already exists in ${this.paths.dir}`, {
        hint: 'every device certificate chains to it; move the directory away yourself if you really mean to start over',
      })
    }
    mkdirSync(this.paths.dir, { recursive: true, mode: 0o700 })
    const now = this.#now()
    const caKey = await generateKey('ecdsa-p256')
    const caPem = await createCaCertificate(caKey, options.caCommonName ?? 'PlaceGuard Fleet CA',
      windowFor(now, options.caValidityDays ?? DEFAULT_CA_DAYS).notAfter)
    const signer = await loadSigner(caPem, caKey.privateKeyPem)
    const serverDays = options.serverValidityDays ?? DEFAULT_SERVICE_DAYS
    const server = await this.#signService(signer, 'localhost', undefined, 'server', serverDays,
      ['localhost', ...(options.serverNames ?? [])], ['127.0.0.1', '::1'])
    const collector = await this.#signService(signer, 'collector', { role: 'collector', name: 'collector' }, 'client', serverDays)
    const crl = signCrlPem(signer.certificate.rawData, caKey.privateKeyPem, {
      entries: [], crlNumber: 1, ...crlWindow(now, this.#crlValidityDays),
    })
    // The CA key is written last: until it exists, `initialized` stays false and a retry starts clean.
    writeFilesAtomic([
      { path: this.paths.serverCert, content: server.certificatePem },
      { path: this.paths.serverKey, content: server.privateKeyPem, mode: PRIVATE },
      { path: this.paths.collectorCert, content: collector.certificatePem },
      { path: this.paths.collectorKey, content: collector.privateKeyPem, mode: PRIVATE },
      { path: this.paths.crl, content: crl },
      { path: this.paths.caCert, content: caPem },
      { path: this.paths.caKey, content: caKey.privateKeyPem, mode: PRIVATE },
    ])
    const inventory = this.#openInventory()
    inventory.transaction(() => {
      inventory.insert(server.record)
      inventory.insert(collector.record)
      inventory.nextCrlNumber()
    })
    this.#signer = signer
  }

  /** Issues a key and certificate for one device (`pki issue`). */
  async issue (request: IssueRequest): Promise<IssuedDevice> {
    const [issued] = await this.issueMany([request])
    return issued!
  }

  /**
   * Issues many devices at once — the simulator's and the benchmark's path.
   * All requests are validated first. Every serial is recorded as pending
   * in one transaction before anything is signed, the files are written,
   * then one transaction marks them active: a crash in between leaves
   * pending rows that `reconcile` settles, never a certificate the
   * inventory cannot name and revoke.
   */
  async issueMany (requests: IssueRequest[], onProgress?: (done: number, total: number) => void): Promise<IssuedDevice[]> {
    return this.#issue(requests, false, onProgress)
  }

  /**
   * Renews a device (`pki renew`): a new key and certificate for the same
   * identity (kind and site kept), written over the device's files; the
   * old certificate becomes `superseded` — still valid, not revoked — so
   * the device keeps working until it has switched. Revoking the device
   * revokes both, and a revoke that lands while the renewal is signing
   * revokes the new certificate too. This is how a cert-expiry alert is answered.
   */
  async renew (deviceId: string, options: Omit<IssueRequest, 'deviceId' | 'kind' | 'site'> = {}): Promise<IssuedDevice & { superseded: InventoryRecord }> {
    assertDeviceId('deviceId', deviceId)
    const current = this.#openInventory().activeFor('device', deviceId)
    if (!current || !current.kind || !current.site) throw noActiveCertificate(deviceId, 'to renew', 'issue one with `placeguard pki issue`')
    const [issued] = await this.#issue([{ ...options, deviceId, kind: current.kind, site: current.site }], true)
    return { ...issued!, superseded: { ...current, status: 'superseded' } }
  }

  async #issue (requests: IssueRequest[], renewing: boolean, onProgress?: (done: number, total: number) => void): Promise<IssuedDevice[]> {
    const signer = await this.#loadSigner()
    const inventory = this.#openInventory()
    const active = inventory.activeDeviceIds()
    const seen = new Set<string>()
    const jobs: Array<LeafJob & { kind: DeviceKind, site: string }> = requests.map((request) => {
      const { deviceId, kind, site } = assertDeviceIdentity('deviceId', request)
      if ((active.has(deviceId) && !renewing) || seen.has(deviceId)) throw duplicateId(deviceId)
      seen.add(deviceId)
      const { notBefore, notAfter } = deviceValidity(request, this.#now(), signer.certificate.notAfter)
      const files = deviceFiles(request.outDir ?? this.paths.devicesDir, deviceId)
      return {
        kind, site,
        certificatePath: files.cert,
        privateKeyPath: files.key,
        serialNumber: newSerialNumber(),
        commonName: deviceId,
        identity: { role: 'device', deviceId, kind, site },
        notBefore: notBefore.toISOString(),
        notAfter: notAfter.toISOString(),
        keyAlgorithm: request.keyAlgorithm ?? 'ecdsa-p256',
      }
    })
    const products = requests.map((request) => deviceProductOf(request))
    const issuedAt = this.#now().toISOString()
    const pending = jobs.map((job): InventoryRecord => ({
      serial: job.serialNumber, deviceId: job.commonName, role: 'device', kind: job.kind, site: job.site,
      notBefore: job.notBefore, notAfter: job.notAfter, keyAlgorithm: job.keyAlgorithm,
      status: 'pending', issuedAt, revokedAt: null, fingerprint: null, spkiSha256: null, certificatePath: job.certificatePath,
    }))
    // The serials exist in the inventory before any certificate does: a
    // crash can leave a pending row, never a valid certificate nobody can
    // name or revoke (STRIDE: Spoofing). The state is re-checked under the
    // write lock, so a revoke or issue by another process since the reads
    // above is seen.
    inventory.transaction(() => {
      for (const record of pending) {
        const current = inventory.activeFor('device', record.deviceId)
        if (renewing && !current) throw noActiveCertificate(record.deviceId, 'to renew', 'it was revoked meanwhile; issue a new one with `placeguard pki issue`')
        if (!renewing && current) throw duplicateId(record.deviceId)
        if (inventory.pendingFor('device', record.deviceId)) throw inFlight(record.deviceId)
        inventory.insert(record)
      }
    })
    // A renewal writes over the device's files: the old ones are set aside until the new certificate is active.
    const files = jobs.flatMap((job) => [job.certificatePath, job.privateKeyPath])
    const removeFiles = (): void => {
      for (const path of files) {
        try {
          rmSync(path, { force: true })
          if (renewing && existsSync(previous(path))) renameSync(previous(path), path)
        } catch {
          // its directory is what failed: there is nothing there to remove
        }
      }
    }
    let signed
    try {
      for (const dir of new Set(jobs.map((job) => dirname(job.certificatePath)))) mkdirSync(dir, { recursive: true, mode: 0o700 })
      if (renewing) for (const path of files) if (existsSync(path)) renameSync(path, previous(path))
      signed = await signLeaves({ certificatePem: signer.certificate.toString('pem'), privateKeyPem: readFileSync(this.paths.caKey, 'utf8') },
        jobs, (done) => onProgress?.(done, jobs.length))
    } catch (error) {
      // Some of the batch may have been signed before the failure: their serials go into the CRL, then the files go.
      this.#revokeSerials(pending.map((record) => record.serial))
      removeFiles()
      throw error
    }
    const revokedMeanwhile: string[] = []
    const records = inventory.transaction(() => pending.map((record, i) => {
      const landed = inventory.activate(record.serial, signed[i]!)
      if (!landed) revokedMeanwhile.push(record.deviceId)
      return landed ?? { ...record, status: 'revoked' as const }
    }))
    if (revokedMeanwhile.length > 0) {
      // A revoke took the pending serial with the identity (and wrote it into the CRL): the new files are no use.
      removeFiles()
      throw noActiveCertificate(revokedMeanwhile[0]!, 'to issue', 'it was revoked while its certificate was being signed; the new certificate is revoked too')
    }
    if (renewing) for (const path of files) rmSync(previous(path), { force: true })
    products.forEach((product, i) => { if (product) this.#deviceProducts().set(jobs[i]!.commonName, product) })
    return jobs.map((job, i) => ({ record: records[i]!, certificatePath: job.certificatePath, privateKeyPath: job.privateKeyPath }))
  }

  /**
   * Signs a device's own CSR (`pki sign`): the private key never leaves the
   * device. The id is the CSR's CN, checked like any other, and the key must
   * not already be bound to another identity that is not revoked: a device
   * holding another's key could speak as it (STRIDE: Spoofing).
   */
  async signCsr (csrPem: string, request: Omit<IssueRequest, 'deviceId' | 'keyAlgorithm'>): Promise<IssuedDevice> {
    const signer = await this.#loadSigner()
    let csr
    try {
      csr = await parseCsr(csrPem)
    } catch (error) {
      throw new PlaceGuardError('PG_ERR_PKI_CSR_INVALID', `csr: ${(error as Error).message}`, {
        field: 'csr', hint: 'give a PEM PKCS#10 request (openssl req -new -key device.key -subj /CN=<deviceId>)', cause: error,
      })
    }
    const keyAlgorithm = assertCsrKeyAlgorithm(csr.algorithm)
    const product = deviceProductOf(request)
    const { deviceId, kind, site } = assertDeviceIdentity('csr CN', { ...request, deviceId: csr.commonName })
    const { notBefore, notAfter } = deviceValidity(request, this.#now(), signer.certificate.notAfter)
    const spkiSha256 = sha256Hex(csr.publicKeyDer)
    const files = deviceFiles(request.outDir ?? this.paths.devicesDir, deviceId)
    const pending: InventoryRecord = {
      serial: newSerialNumber(), deviceId, role: 'device', kind, site,
      notBefore: notBefore.toISOString(), notAfter: notAfter.toISOString(), keyAlgorithm,
      status: 'pending', issuedAt: this.#now().toISOString(), revokedAt: null, fingerprint: null, spkiSha256, certificatePath: files.cert,
    }
    const inventory = this.#openInventory()
    inventory.transaction(() => {
      if (inventory.activeFor('device', deviceId)) throw duplicateId(deviceId)
      if (inventory.pendingFor('device', deviceId)) throw inFlight(deviceId)
      const holder = inventory.holderOfKey(spkiSha256, 'device', deviceId)
      if (holder) throw keyInUse(holder)
      inventory.insert(pending)
    })
    let certificate
    try {
      certificate = await createLeafCertificate(signer, {
        publicKeyDer: csr.publicKeyDer, commonName: deviceId, identity: { role: 'device', deviceId, kind, site },
        usage: 'client', notBefore, notAfter, serialNumber: pending.serial,
      })
      writeFileAtomic(files.cert, certificate.toString('pem'))
    } catch (error) {
      rmSync(files.cert, { force: true })
      this.#revokeSerials([pending.serial])
      throw error
    }
    const record = inventory.transaction(() => inventory.activate(pending.serial, { fingerprint: sha256Hex(certificate.rawData), spkiSha256 }))
    if (!record) {
      rmSync(files.cert, { force: true })
      throw noActiveCertificate(deviceId, 'to issue', 'it was revoked while its certificate was being signed; the new certificate is revoked too')
    }
    if (product) this.#deviceProducts().set(deviceId, product)
    return { record, certificatePath: files.cert }
  }

  /**
   * Revokes every certificate of a device (active, superseded, or being
   * issued) and rewrites the CRL, both under the inventory's write lock: a
   * renewal in another process either sees the revocation or is revoked
   * with it. A running broker watches the CRL: new handshakes are refused
   * and a live session is dropped within seconds.
   */
  async revoke (deviceId: string): Promise<InventoryRecord[]> {
    assertId('deviceId', deviceId)
    await this.#loadSigner()
    const inventory = this.#openInventory()
    const now = this.#now()
    return inventory.transaction(() => {
      const revoked = inventory.revoke('device', deviceId, now)
      if (revoked.length === 0) throw noActiveCertificate(deviceId, '', 'see `placeguard pki list`')
      this.#writeCrl(inventory, now)
      return revoked
    })
  }

  /**
   * Revokes one certificate by serial, whatever the inventory says of it
   * (`pki revoke --serial`): a pending serial from a crashed run, a
   * superseded certificate, one whose device id was reused.
   */
  async revokeSerial (serial: string): Promise<InventoryRecord> {
    assertSerial(serial)
    await this.#loadSigner()
    const inventory = this.#openInventory()
    const now = this.#now()
    return inventory.transaction(() => {
      const record = inventory.revokeSerial(serial, now)
      if (!record) {
        throw new PlaceGuardError('PG_ERR_PKI_UNKNOWN_SERIAL', `serial: ${serial} is not in the inventory`, {
          field: 'serial', hint: 'if you hold the certificate file, put it in the devices directory and run `placeguard pki reconcile`',
        })
      }
      this.#writeCrl(inventory, now)
      return record
    })
  }

  /**
   * Settles what a crash left (`pki reconcile`): a pending certificate whose
   * file landed becomes active; one that never landed is revoked — its
   * serial goes into the CRL, since a signed certificate may exist
   * somewhere; a certificate file signed by the fleet CA that the inventory
   * does not know is recorded and revoked. Run it when no issue is in progress.
   */
  async reconcile (extraDirs: string[] = []): Promise<ReconcileReport> {
    await this.#loadSigner()
    const ca = new X509Certificate(readFileSync(this.paths.caCert))
    const inventory = this.#openInventory()
    const landed = new Map<string, { fingerprint: string, spkiSha256: string }>()
    for (const record of inventory.pending()) {
      const found = record.certificatePath ? readFleetCertificate(record.certificatePath, ca) : undefined
      if (found && found.serial === normalizeSerial(record.serial)) landed.set(record.serial, found)
    }
    const dirs = new Set([this.paths.devicesDir, ...extraDirs])
    for (const record of inventory.list()) if (record.certificatePath) dirs.add(dirname(record.certificatePath))
    const onDisk = [...dirs].flatMap((dir) => certificateFiles(dir))
      .flatMap((path) => { const found = readFleetCertificate(path, ca); return found ? [{ path, ...found }] : [] })
    const now = this.#now()
    const report: ReconcileReport = { activated: [], revoked: [], unknown: [] }
    inventory.transaction(() => {
      for (const record of inventory.pending()) {
        const landing = landed.get(record.serial)
        const settled = landing ? inventory.activate(record.serial, landing) : inventory.revokeSerial(record.serial, now)
        if (settled) (landing ? report.activated : report.revoked).push(settled)
      }
      for (const file of onDisk) {
        if (inventory.bySerial(file.serial)) continue
        const record = { ...file.record, status: 'revoked' as const, revokedAt: now.toISOString(), issuedAt: now.toISOString() }
        inventory.insert(record)
        report.unknown.push({ path: file.path, record })
      }
      if (report.revoked.length > 0 || report.unknown.length > 0) this.#writeCrl(inventory, now)
    })
    // A renewal that crashed set the device's old files aside: keep the new ones if they landed, else put the old back.
    for (const record of [...report.activated, ...report.revoked]) {
      if (!record.certificatePath) continue
      for (const path of [record.certificatePath, record.certificatePath.replace(/\.crt$/, '.key')]) {
        if (!existsSync(previous(path))) continue
        if (record.status === 'active') rmSync(previous(path), { force: true })
        else renameSync(previous(path), path)
      }
    }
    return report
  }

  /** Re-signs the CRL with a fresh nextUpdate; run it from cron well inside crlValidityDays. */
  async refreshCrl (): Promise<void> {
    await this.#loadSigner()
    const inventory = this.#openInventory()
    inventory.transaction(() => this.#writeCrl(inventory, this.#now()))
  }

  /**
   * Re-signs the CRL if it lapses within `withinDays` (or cannot be read);
   * answers the nextUpdate in force afterwards. Once a CRL lapses OpenSSL
   * refuses every client, so a running broker calls this periodically.
   */
  async refreshCrlIfDue (withinDays = 7): Promise<{ refreshed: boolean, nextUpdate: Date | undefined }> {
    this.#requireCa()
    let nextUpdate: Date | undefined
    try {
      nextUpdate = (await readCrl(readFileSync(this.paths.crl, 'utf8'), readFileSync(this.paths.caCert, 'utf8'))).nextUpdate
    } catch {
      nextUpdate = undefined // unreadable or not ours: re-sign
    }
    if (!crlRefreshDue(nextUpdate, this.#now(), withinDays)) return { refreshed: false, nextUpdate }
    await this.refreshCrl()
    return { refreshed: true, nextUpdate: (await readCrl(readFileSync(this.paths.crl, 'utf8'), readFileSync(this.paths.caCert, 'utf8'))).nextUpdate }
  }

  list (): InventoryEntry[] {
    this.#requireCa()
    const now = this.#now()
    const records = this.#openInventory().list()
    const products = this.#deviceProducts().all()
    return records.map((record) => {
      const product = record.role === 'device' ? products.get(record.deviceId) : undefined
      return { ...record, effectiveStatus: effectiveStatus(record, now), vendor: product?.vendor ?? null, model: product?.model ?? null }
    })
  }

  close (): void {
    this.#inventory?.close()
    this.#inventory = undefined
    this.#products?.close()
    this.#products = undefined
  }

  #deviceProducts (): DeviceProducts {
    this.#openInventory() // the table lives in the inventory's file; open (and migrate) it first
    return this.#products ??= new DeviceProducts(this.paths.inventory)
  }

  /** Revokes serials that may have been signed, and lists them in the CRL. */
  #revokeSerials (serials: string[]): void {
    const inventory = this.#openInventory()
    const now = this.#now()
    inventory.transaction(() => {
      for (const serial of serials) inventory.revokeSerial(serial, now)
      this.#writeCrl(inventory, now)
    })
  }

  /**
   * Writes the CRL; call it inside an inventory transaction. The write
   * lock serialises CRL writers across processes, the number is taken past
   * both the database's and the file's, and the file is renamed into place
   * before the lock is released: cRLNumber on disk only ever increases
   * (RFC 5280 §5.2.3), so no process writes an older CRL over a newer one.
   */
  #writeCrl (inventory: Inventory, now: Date): void {
    const entries = inventory.crlEntries(crlKeepExpiredSince(now, this.#crlKeepExpiredDays))
      .map((record) => ({ serialNumber: record.serial, revokedAt: new Date(record.revokedAt!) }))
    const onDisk = existsSync(this.paths.crl) ? crlNumberOf(readFileSync(this.paths.crl, 'utf8')) : 0
    const crl = signCrlPem(this.#signer!.certificate.rawData, readFileSync(this.paths.caKey, 'utf8'), {
      entries, crlNumber: inventory.nextCrlNumber(onDisk + 1), ...crlWindow(now, this.#crlValidityDays),
    })
    writeFileAtomic(this.paths.crl, crl)
  }

  async #signService (signer: Signer, commonName: string, identity: Identity | undefined, usage: 'client' | 'server',
    days: number, dnsNames?: string[], ipAddresses?: string[]): Promise<{ certificatePem: string, privateKeyPem: string, record: InventoryRecord }> {
    const now = this.#now()
    const key = await generateKey('ecdsa-p256')
    const { notBefore, notAfter } = windowFor(now, days)
    const certificate = await createLeafCertificate(signer, {
      publicKeyDer: key.publicKeyDer, commonName, identity, usage, notBefore, notAfter,
      serialNumber: newSerialNumber(), dnsNames, ipAddresses,
    })
    return {
      certificatePem: certificate.toString('pem'),
      privateKeyPem: key.privateKeyPem,
      record: {
        serial: certificate.serialNumber, deviceId: commonName, role: usage === 'server' ? 'server' : 'collector',
        kind: null, site: null, notBefore: notBefore.toISOString(), notAfter: notAfter.toISOString(),
        keyAlgorithm: 'ecdsa-p256', status: 'active', issuedAt: now.toISOString(), revokedAt: null,
        fingerprint: sha256Hex(certificate.rawData), spkiSha256: sha256Hex(key.publicKeyDer), certificatePath: null,
      },
    }
  }

  async #loadSigner (): Promise<Signer> {
    this.#requireCa()
    this.#signer ??= await loadSigner(readFileSync(this.paths.caCert, 'utf8'), readFileSync(this.paths.caKey, 'utf8'))
    return this.#signer
  }

  #requireCa (): void {
    if (!this.initialized) {
      throw new PlaceGuardError('PG_ERR_PKI_NO_CA', `no fleet CA in ${this.paths.dir}`, {
        hint: 'run `placeguard pki init` with the same --data-dir first',
      })
    }
  }

  #openInventory (): Inventory {
    if (!this.#inventory) {
      this.#inventory = new Inventory(this.paths.inventory)
      this.#backfillKeyHashes(this.#inventory)
    }
    return this.#inventory
  }

  /**
   * Rows from before the one-key-one-identity check have no key hash, so
   * `pki sign` could not see a key they hold. Once, after the migration,
   * the hashes are read from the certificate files where they are found
   * (the data directory's own; `--out` copies are not known to it).
   */
  #backfillKeyHashes (inventory: Inventory): void {
    if (!this.initialized || inventory.meta('key_hashes_backfilled') === '1') return
    const ca = new X509Certificate(readFileSync(this.paths.caCert))
    const servicePaths: Record<string, string> = { server: this.paths.serverCert, collector: this.paths.collectorCert }
    inventory.transaction(() => {
      for (const record of inventory.withoutKeyHash()) {
        const path = record.certificatePath ?? servicePaths[record.role] ?? deviceFiles(this.paths.devicesDir, record.deviceId).cert
        const found = readFleetCertificate(path, ca)
        if (found && found.serial === normalizeSerial(record.serial)) inventory.recordKeyHash(record.serial, found.spkiSha256, path)
      }
      inventory.setMeta('key_hashes_backfilled', '1')
    })
  }

  #now (): Date {
    return new Date(this.#clock.now())
  }
}

function previous (path: string): string {
  return `${path}.previous`
}

function noActiveCertificate (deviceId: string, purpose: string, hint: string): PlaceGuardError {
  return new PlaceGuardError('PG_ERR_PKI_UNKNOWN_DEVICE', `deviceId: no active certificate for "${deviceId}"${purpose ? ` ${purpose}` : ''}`, {
    field: 'deviceId', hint,
  })
}

function inFlight (deviceId: string): PlaceGuardError {
  return new PlaceGuardError('PG_ERR_PKI_DUPLICATE_ID', `deviceId: a certificate for "${deviceId}" is being issued (pending)`, {
    field: 'deviceId', hint: 'wait for it; if that run crashed, `placeguard pki reconcile` settles it',
  })
}

function keyInUse (holder: InventoryRecord): PlaceGuardError {
  return new PlaceGuardError('PG_ERR_PKI_KEY_IN_USE',
    `csr: the public key is already bound to "${holder.deviceId}" (serial ${holder.serial}, ${holder.status})`, {
      field: 'csr', hint: 'each device needs its own key pair; generate a new key on the device, or revoke the other certificate first',
    })
}

function certificateFiles (dir: string): string[] {
  try {
    return readdirSync(dir).filter((name) => name.endsWith('.crt')).map((name) => join(dir, name))
  } catch {
    return [] // a directory that is gone holds no certificates
  }
}

/** A certificate file the fleet CA really signed (signature checked), as an inventory row; undefined otherwise. */
function readFleetCertificate (path: string, ca: X509Certificate): { serial: string, fingerprint: string, spkiSha256: string, record: InventoryRecord } | undefined {
  let der: Buffer
  try {
    der = new X509Certificate(readFileSync(path)).raw
  } catch {
    return undefined
  }
  if (certificateOrigin(der, ca) !== 'fleet-ca') return undefined
  const certificate = new X509Certificate(der)
  const identity = identityFromSubjectAltName(certificate.subjectAltName)
  const commonName = /^CN=(.*)$/m.exec(certificate.subject)?.[1] ?? ''
  const spkiSha256 = sha256Hex(certificate.publicKey.export({ type: 'spki', format: 'der' }))
  const fingerprint = sha256Hex(der)
  const serial = normalizeSerial(certificate.serialNumber)
  return {
    serial, fingerprint, spkiSha256,
    record: {
      serial, fingerprint, spkiSha256, certificatePath: path,
      deviceId: identity?.role === 'device' ? identity.deviceId : identity?.role === 'collector' ? identity.name : commonName,
      role: identity?.role ?? 'device',
      kind: identity?.role === 'device' ? identity.kind : null,
      site: identity?.role === 'device' ? identity.site : null,
      notBefore: new Date(certificate.validFrom).toISOString(),
      notAfter: new Date(certificate.validTo).toISOString(),
      keyAlgorithm: keyAlgorithmOf(certificate.publicKey) ?? 'ecdsa-p256',
      status: 'revoked', issuedAt: '', revokedAt: null,
    },
  }
}

function duplicateId (deviceId: string): PlaceGuardError {
  return new PlaceGuardError('PG_ERR_PKI_DUPLICATE_ID', `deviceId: "${deviceId}" already has an active certificate`, {
    field: 'deviceId', hint: 'revoke it first (`placeguard pki revoke`), or choose another id',
  })
}

